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
--
-- Agents ([domain] hosts =, `dkimkeyd agent --host NAME`): one login per
-- MTA host, which reads that host's assignments, key requests and (for
-- the domains assigned to it) sealed keys, and writes that host's acks,
-- heartbeat and made keys; never another host's rows, never the state,
-- the leases or DNS credentials (row-level security, below).
-- 5. As a superuser: CREATE ROLE dkimkeyd_mx1 LOGIN PASSWORD '...';
-- 6. After step 3, as the owner, once per host:
--      psql -v owner=dkimkeyd_owner -v agent=dkimkeyd_mx1 -v host=mx1 \
--           --set step=agent -f roles.sql dkimkeyd
--    (host as hosts = names it and the agent's --host gives it), and
--    point that host's conninfo_file at its role.

\set ON_ERROR_STOP on
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
SELECT :'step' = 'agent' AS is_agent \gset
\if :is_agent
-- One MTA host's agent: its own rows only.
\if :{?agent}
\else
DO $$ BEGIN RAISE EXCEPTION 'step agent needs -v agent=ROLE'; END $$;
\endif
\if :{?host}
\else
DO $$ BEGIN RAISE EXCEPTION 'step agent needs -v host=NAME'; END $$;
\endif
\set pol 'dk_agent_' :host
GRANT CONNECT ON DATABASE dkimkeyd TO :"agent";
GRANT USAGE ON SCHEMA public TO :"agent";
GRANT SELECT ON dk_schema_version TO :"agent";
GRANT SELECT, INSERT, UPDATE ON dk_agent, dk_ack TO :"agent";
GRANT SELECT ON dk_assign, dk_key_sealed TO :"agent";
GRANT SELECT, UPDATE ON dk_keyreq TO :"agent";
DROP POLICY IF EXISTS :"pol" ON dk_agent;
DROP POLICY IF EXISTS :"pol" ON dk_ack;
DROP POLICY IF EXISTS :"pol" ON dk_assign;
DROP POLICY IF EXISTS :"pol" ON dk_keyreq;
DROP POLICY IF EXISTS :"pol" ON dk_key_sealed;
CREATE POLICY :"pol" ON dk_agent TO :"agent" USING (host = :'host')
    WITH CHECK (host = :'host');
CREATE POLICY :"pol" ON dk_ack TO :"agent" USING (host = :'host')
    WITH CHECK (host = :'host');
CREATE POLICY :"pol" ON dk_assign TO :"agent" USING (host = :'host');
CREATE POLICY :"pol" ON dk_keyreq TO :"agent" USING (host = :'host')
    WITH CHECK (host = :'host');
-- Sealed keys: of the domains this host is assigned only.
CREATE POLICY :"pol" ON dk_key_sealed TO :"agent" USING (EXISTS (
    SELECT 1 FROM dk_assign a WHERE a.domain = dk_key_sealed.domain
    AND a.host = :'host'));
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
-- Several MTA hosts (schema version 2 and 3): the scheduler seals shared
-- keys, assigns them, reads the acks and heartbeats, asks hosts for
-- per-host keys, reads them back and deletes superseded requests.
GRANT SELECT, INSERT, DELETE ON dk_key_sealed TO :"sched";
GRANT SELECT, INSERT, UPDATE ON dk_assign TO :"sched";
GRANT SELECT ON dk_ack, dk_agent TO :"sched";
GRANT SELECT, INSERT, DELETE ON dk_keyreq TO :"sched";
-- Rows are the agents' per host (step agent); the scheduler sees all.
ALTER TABLE dk_key_sealed ENABLE ROW LEVEL SECURITY;
ALTER TABLE dk_assign ENABLE ROW LEVEL SECURITY;
ALTER TABLE dk_ack ENABLE ROW LEVEL SECURITY;
ALTER TABLE dk_agent ENABLE ROW LEVEL SECURITY;
ALTER TABLE dk_keyreq ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS dk_scheduler ON dk_key_sealed;
DROP POLICY IF EXISTS dk_scheduler ON dk_assign;
DROP POLICY IF EXISTS dk_scheduler ON dk_ack;
DROP POLICY IF EXISTS dk_scheduler ON dk_agent;
DROP POLICY IF EXISTS dk_scheduler ON dk_keyreq;
CREATE POLICY dk_scheduler ON dk_key_sealed TO :"sched" USING (true)
    WITH CHECK (true);
CREATE POLICY dk_scheduler ON dk_assign TO :"sched" USING (true)
    WITH CHECK (true);
CREATE POLICY dk_scheduler ON dk_ack TO :"sched" USING (true)
    WITH CHECK (true);
CREATE POLICY dk_scheduler ON dk_agent TO :"sched" USING (true)
    WITH CHECK (true);
CREATE POLICY dk_scheduler ON dk_keyreq TO :"sched" USING (true)
    WITH CHECK (true);
\endif
\endif
