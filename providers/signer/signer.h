/*
 * providers/signer/signer.h — what a signer activator does.
 */
#ifndef DK_SIGNER_H
#define DK_SIGNER_H

#include "../../lib/conf.h"

struct dk_signer_ops {
	const char		 *name;		/* type = value: "opendkim" */
	const char *const	 *keys;		/* allowed section keys */

	int	(*open)(const struct dk_conf_section *, void **ctx,
		    struct dk_error *);

	/*
	 * Make the signer use (selector, keyfile) for domain, and no other
	 * of the domain's managed selectors (the nsel names in managed);
	 * lines or files it does not manage are preserved.  Atomic (temp
	 * file + rename), then the reload command is run and its exit
	 * status checked.  Idempotent.
	 */
	int	(*activate)(void *ctx, const char *domain,
		    const char *const *managed, size_t nsel,
		    const char *selector, const char *keyfile,
		    struct dk_error *);

	/*
	 * Read back which selector and key file the signer configuration
	 * points to for domain: DK_ENOTFOUND when none.  Strings malloc'd.
	 */
	int	(*current)(void *ctx, const char *domain, char **selector,
		    char **keyfile, struct dk_error *);

	void	(*close)(void *ctx);
};

const struct dk_signer_ops *dk_signer_find(const char *type);

extern const struct dk_signer_ops dk_signer_opendkim_ops;
extern const struct dk_signer_ops dk_signer_files_ops;

/*
 * Run argv (fork + execve, no shell, stdin /dev/null) and wait; DK_OK on
 * exit status 0, DK_ETEMP otherwise with a message naming the command
 * and its status.
 */
int	dk_signer_run(char *const *argv, struct dk_error *);

#endif
