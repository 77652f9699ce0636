/*
 * tests/fuzz/fuzz_opendkim.c — libFuzzer target for the OpenDKIM
 * KeyTable and SigningTable reader (providers/signer/opendkim.c).
 *
 * The input is both tables, split at the first NUL byte (KeyTable
 * first), written to /dev/shm.  Beyond "no crash": check, current and
 * activate agree.  When check passes, activate of a key for
 * example.com succeeds and current then returns exactly that key; when
 * check fails, activate fails too and leaves the SigningTable (what
 * OpenDKIM signs by) as it was.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../providers/signer/signer.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char dir[64], kt[128], st[128];

static void
put(const char *p, const uint8_t *d, size_t n)
{
	int fd;

	if ((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, d, n) != (ssize_t)n || close(fd) == -1)
		abort();
}

static char *
slurp(const char *p, size_t *n)
{
	FILE *f = fopen(p, "r");
	char *buf;

	if ((buf = malloc(1 << 22)) == NULL)
		abort();
	*n = f != NULL ? fread(buf, 1, 1 << 22, f) : 0;
	if (f != NULL)
		fclose(f);
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct dk_signer_ops *ops = &dk_signer_opendkim_ops;
	struct dk_conf_kv kv[2];
	struct dk_conf_section sec;
	struct dk_signer_key want = { (char *)"mail1",
	    (char *)"/k/example.com.mail1.ab.pem" }, *keys = NULL;
	const char *managed[] = { "mail1", "mail2" };
	struct dk_error err = { 0 };
	const uint8_t *nul;
	char *b1, *b2, *a1, *a2;
	size_t ksz, n = 0, l1, l2, m1, m2;
	void *ctx = NULL;
	int ck, rc;

	if (dir[0] == '\0') {
		strcpy(dir, "/dev/shm/dk-fuzz-odk.XXXXXX");
		if (mkdtemp(dir) == NULL && (strcpy(dir,
		    "/tmp/dk-fuzz-odk.XXXXXX"), mkdtemp(dir) == NULL))
			abort();
		snprintf(kt, sizeof(kt), "%s/KeyTable", dir);
		snprintf(st, sizeof(st), "%s/SigningTable", dir);
	}
	nul = memchr(data, '\0', size);
	ksz = nul != NULL ? (size_t)(nul - data) : size;
	put(kt, data, ksz);
	put(st, nul != NULL ? nul + 1 : data + size,
	    nul != NULL ? size - ksz - 1 : 0);

	memset(kv, 0, sizeof(kv));
	kv[0].key = (char *)"key_table";
	kv[0].value = kt;
	kv[1].key = (char *)"signing_table";
	kv[1].value = st;
	memset(&sec, 0, sizeof(sec));
	sec.kind = (char *)"signer";
	sec.name = (char *)"fuzz";
	sec.type = (char *)"opendkim";
	sec.file = (char *)"fuzz.conf";
	sec.kv = kv;
	sec.nkv = 2;
	if (ops->open(&sec, &ctx, &err) != DK_OK)
		abort();
	ck = ops->check(ctx, &err);
	if (ck != DK_OK && (err.msg[0] == '\0' || ck == DK_ENOTFOUND))
		abort();
	rc = ops->current(ctx, "example.com", &keys, &n, &err);
	if (rc == DK_OK)
		dk_signer_keys_free(keys, n);
	else if (err.msg[0] == '\0')
		abort();
	b1 = slurp(kt, &l1);
	b2 = slurp(st, &m1);
	rc = ops->activate(ctx, "example.com", DK_MATCH_DOMAIN,
	    managed, 2, &want, 1, &err);
	if (ck != DK_OK) {
		/*
		 * What check refuses, activate refuses.  It may have added
		 * the new key's KeyTable line before it met the bad table
		 * (the first of its steps, harmless: nothing signs by it),
		 * never a SigningTable change.
		 */
		a1 = slurp(kt, &l2);
		a2 = slurp(st, &m2);
		(void)l2;
		if (rc == DK_OK || m1 != m2 || memcmp(b2, a2, m1) != 0)
			abort();
		free(a1);
		free(a2);
	} else if (rc == DK_OK) {
		keys = NULL;
		n = 0;
		if (ops->current(ctx, "example.com", &keys, &n, &err) !=
		    DK_OK || n != 1 || strcmp(keys[0].selector, "mail1") != 0 ||
		    strcmp(keys[0].keyfile, want.keyfile) != 0)
			abort();
		dk_signer_keys_free(keys, n);
	} else if (rc != DK_ETEMP && rc != DK_EIO) {
		/* Tables that read well must take a key. */
		abort();
	}
	free(b1);
	free(b2);
	ops->close(ctx);
	return 0;
}
