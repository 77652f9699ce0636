/*
 * daemon/keydir.c — the files an interrupted run may have left in the key
 * directory, read once per process instead of once per key generation.
 *
 * A crash between writing a key and committing the state leaves either a
 * temp file (DOMAIN.SELECTOR.ID.pem.tmp.SUFFIX) or a whole key file the
 * state does not know (DOMAIN.SELECTOR.ID.pem).  Looking for them with a
 * directory scan on every generation made a bulk rotation of N domains
 * read N directories of N entries.  Only files present when the process
 * started (or last reloaded) can be such leftovers of another run, so the
 * directory is read once, sorted, and searched by prefix.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

static struct {
	char	*dir;		/* the key directory read, or NULL */
	char	**names;	/* sorted; NULL once taken */
	size_t	 n;
} kd;

void
dk_keydir_forget(void)
{
	size_t i;

	for (i = 0; i < kd.n; i++)
		free(kd.names[i]);
	free(kd.names);
	free(kd.dir);
	memset(&kd, 0, sizeof(kd));
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Only names that end in .pem or contain .pem.tmp. are kept. */
static int
keydir_read(const char *dir)
{
	struct dirent *de;
	char **nn;
	size_t cap = 0;
	DIR *d;

	dk_keydir_forget();
	if ((kd.dir = dk_strdup(dir)) == NULL)
		return -1;
	if ((d = opendir(dir)) == NULL)
		return 0;		/* nothing to find */
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (strstr(de->d_name, ".pem.tmp.") == NULL &&
		    (len < 4 || strcmp(de->d_name + len - 4, ".pem") != 0))
			continue;
		if (kd.n == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			if ((nn = realloc(kd.names, cap * sizeof(*nn))) ==
			    NULL)
				break;
			kd.names = nn;
		}
		if ((kd.names[kd.n] = dk_strdup(de->d_name)) == NULL)
			break;
		kd.n++;
	}
	closedir(d);
	/* An empty directory has no array: qsort must not see NULL. */
	if (kd.n > 1)
		qsort(kd.names, kd.n, sizeof(*kd.names), cmp_name);
	return 0;
}

size_t
dk_keydir_leftovers(const char *dir, const char *prefix, const char ***out)
{
	size_t lo, hi, mid, plen = strlen(prefix);

	if ((kd.dir == NULL || strcmp(kd.dir, dir) != 0) &&
	    keydir_read(dir) != 0)
		return 0;
	lo = 0;
	hi = kd.n;
	while (lo < hi) {		/* the first name >= prefix */
		mid = lo + (hi - lo) / 2;
		if (strcmp(kd.names[mid], prefix) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (hi = lo; hi < kd.n && strncmp(kd.names[hi], prefix, plen) == 0;
	    hi++)
		;
	*out = (const char **)kd.names + lo;
	return hi - lo;
}

void
dk_keydir_taken(const char *name)
{
	size_t i;

	for (i = 0; i < kd.n; i++)
		if (strcmp(kd.names[i], name) == 0) {
			free(kd.names[i]);
			memmove(&kd.names[i], &kd.names[i + 1],
			    (kd.n - i - 1) * sizeof(*kd.names));
			kd.n--;
			return;
		}
}
