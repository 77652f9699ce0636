/*
 * tests/fuzz/fuzz_metrics.c — libFuzzer target for the metrics file
 * reader (lib/metrics.c: dk_metrics_merge reads the textfile another
 * writer left, keeps its families and replaces ours).
 *
 * The input is the existing file, on /dev/shm.  Beyond "no crash": a
 * merge that succeeds leaves a file that a second merge of the same set
 * leaves byte for byte as it is (what we write, we read back whole), and
 * a warning is only ever DK_ECORRUPT with a message.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char path[256];

static char *
slurp(size_t *n)
{
	FILE *f = fopen(path, "r");
	char *buf;

	if (f == NULL || (buf = malloc(1 << 22)) == NULL)
		abort();
	*n = fread(buf, 1, 1 << 22, f);
	fclose(f);
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const labels[] = { "domain", "example.com", NULL };
	struct dk_metrics *m;
	struct dk_error err = { 0 }, warn = { 0 };
	char *one, *two;
	size_t n1, n2;
	int fd;

	if (path[0] == '\0') {
		char dir[] = "/dev/shm/dk-fuzz-metrics.XXXXXX";

		if (mkdtemp(dir) == NULL && (strcpy(dir,
		    "/tmp/dk-fuzz-metrics.XXXXXX"), mkdtemp(dir) == NULL))
			abort();
		snprintf(path, sizeof(path), "%s/dkimkeyd.prom", dir);
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, data, size) != (ssize_t)size || close(fd) == -1)
		abort();
	if ((m = dk_metrics_new()) == NULL ||
	    dk_metrics_declare(m, "dkimkeyd_fuzz_seconds", DK_METRIC_GAUGE,
	    "fuzz gauge") != DK_OK ||
	    dk_metrics_set(m, "dkimkeyd_fuzz_seconds", 1.5, labels) != DK_OK)
		abort();
	if (dk_metrics_merge(m, path, &warn, &err) != DK_OK) {
		if (err.code == DK_OK || err.msg[0] == '\0')
			abort();
		dk_metrics_free(m);
		return 0;
	}
	if (warn.code != 0 && (warn.code != DK_ECORRUPT ||
	    warn.msg[0] == '\0'))
		abort();
	one = slurp(&n1);
	memset(&warn, 0, sizeof(warn));
	if (dk_metrics_merge(m, path, &warn, &err) != DK_OK)
		abort();
	two = slurp(&n2);
	if (warn.code != 0 || n1 != n2 || memcmp(one, two, n1) != 0)
		abort();	/* our own file must read back whole */
	free(one);
	free(two);
	dk_metrics_free(m);
	return 0;
}
