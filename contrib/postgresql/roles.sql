-- PostgreSQL roles for dkimkeyd's backend = postgresql.
--
-- Two roles: the owner of the schema, which `dkimkeyd db init` (and
-- `db import`) connect as, and a restricted login for the schedulers
-- (`dkimkeyd run`, `rotate`, `status`, `check`), which may read and write
-- the state and lease rows and nothing else: no CREATE, DROP, ALTER,
-- TRUNCATE, no DELETE of state rows, no write to the schema version.
--
-- 1. As a superuser, create the roles and the database:
--      psql -v owner=dkimkeyd_owner -v owner_password="'...'" \
--           -v sched=dkimkeyd -v sched_password="'...'" \
--           --set step=roles -f roles.sql postgres
--    (or create them by hand, see "step roles" below).
-- 2. Run `dkimkeyd db init` with a conninfo_file naming the owner role.
-- 3. As the owner (or a superuser), in the dkimkeyd database:
--      psql -v owner=dkimkeyd_owner -v sched=dkimkeyd \
--           --set step=grants -f roles.sql dkimkeyd
-- 4. Point the schedulers' conninfo_file at the restricted role.
-- Run step 3 again after every `db init` that upgraded the schema.

\if :{?step}
\else
\set step grants
\endif
\if :{?owner}
\else
\set owner dkimkeyd_owner
\endif
\if :{?sched}
\else
\set sched dkimkeyd
\endif

SELECT :'step' = 'roles' AS is_roles \gset
\if :is_roles
\if :{?owner_password}
CREATE ROLE :"owner" LOGIN PASSWORD :owner_password;
\else
CREATE ROLE :"owner" LOGIN;
\endif
\if :{?sched_password}
CREATE ROLE :"sched" LOGIN PASSWORD :sched_password;
\else
CREATE ROLE :"sched" LOGIN;
\endif
CREATE DATABASE dkimkeyd OWNER :"owner";
\else
-- The database: connect, nothing created in it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE dkimkeyd TO :"sched";
GRANT USAGE ON SCHEMA public TO :"sched";
-- The schema version: read, to refuse a database of another version.
GRANT SELECT ON dk_schema_version TO :"sched";
-- The lifecycle state: read, create a domain's row, compare-and-swap it.
GRANT SELECT, INSERT, UPDATE ON dk_state TO :"sched";
-- Leases: take, renew and give back; tokens from the sequence.
GRANT SELECT, INSERT, UPDATE, DELETE ON dk_lease TO :"sched";
GRANT USAGE ON SEQUENCE dk_lease_token TO :"sched";
\endif
