/*
 * tests/fuzz/fuzz_conf.c — libFuzzer target for the configuration parser
 * (lib/conf.c with its inih callbacks: reader, handler, sections, keys,
 * includes, defaults, cross-references).
 *
 * The input is written to a private file on /dev/shm (no disk writes per
 * run) and loaded as dkimkeyd loads its -c file.  Beyond "no crash": a
 * failure always names a code and says why; a configuration that loads
 * loads again to the same domains.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char path[256];

static void
setup(void)
{
	char dir[] = "/dev/shm/dk-fuzz-conf.XXXXXX";

	if (mkdtemp(dir) == NULL &&
	    (strcpy(dir, "/tmp/dk-fuzz-conf.XXXXXX"), mkdtemp(dir) == NULL))
		abort();
	snprintf(path, sizeof(path), "%s/dkimkeyd.conf", dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_conf *c = NULL, *again = NULL;
	struct dk_error err = { 0 };
	size_t i;
	int fd;

	if (path[0] == '\0')
		setup();
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, data, size) != (ssize_t)size || close(fd) == -1)
		abort();
	if (dk_conf_load(path, &c, &err) != DK_OK) {
		if (err.code == DK_OK || err.msg[0] == '\0')
			abort();	/* every failure says why */
		return 0;
	}
	if (dk_conf_load(path, &again, &err) != DK_OK ||
	    again->ndomains != c->ndomains)
		abort();
	for (i = 0; i < c->ndomains; i++) {
		if (strcmp(c->domains[i].name, again->domains[i].name) != 0 ||
		    dk_conf_domain_find(c, c->domains[i].name) == NULL)
			abort();
		if (c->domains[i].ttl < 1 || c->domains[i].keep_removed < 0)
			abort();
	}
	dk_conf_free(c);
	dk_conf_free(again);
	return 0;
}
