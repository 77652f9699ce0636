/*
 * lib/proc.h — run an outside program (a signer's reload command, a
 * canary, an exec DNS provider): argv straight to execve, never a shell.
 */
#ifndef DK_PROC_H
#define DK_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "dk.h"

struct dk_proc_opts {
	const void	*input;		/* stdin bytes; NULL: /dev/null */
	size_t		 inlen;
	size_t		 out_max;	/* stdout octets kept; 0: /dev/null */
	size_t		 err_max;	/* stderr octets kept; 0: /dev/null */
	int64_t		 timeout_ms;	/* > 0 */
	char *const	*envp;		/* NULL: the caller's environment */
};

struct dk_proc_result {
	int	 status;	/* wait status (WIFEXITED, ...) */
	char	*out;		/* stdout, NUL-terminated (NULL if none) */
	size_t	 outlen;
	int	 out_truncated;	/* it wrote more than out_max */
	char	*err;		/* first err_max octets of stderr, NUL-
				   terminated (NULL if none) */
	size_t	 errlen;
};

/*
 * Run argv[0] (an absolute path) with argv, in a process group of its
 * own, with default signal dispositions and an empty signal mask; stdin
 * from opts->input, stdout and stderr captured as opts asks (reading
 * continues past the caps, so the program never blocks on a full pipe).
 * Returns DK_OK once it has ended, whatever its exit status (in
 * res->status; dk_proc_describe words it), and fills *res (free with
 * dk_proc_result_free).
 * Errors, each naming argv[0]: not an absolute path or a bad timeout
 * DK_EINVAL; cannot be executed (missing, not executable) DK_ECONFIG,
 * except a transient shortage (ENOMEM, EAGAIN, ETXTBSY) DK_ETEMP; still
 * running at the timeout: its whole process group is sent SIGTERM, then
 * SIGKILL 2 s later, and DK_ETEMP "timed out after ...".  Once the program
 * itself has ended, output still held open by something it left running
 * is read for at most 200 ms more.  The caller may own SIGCHLD: only this
 * child is waited for, by polling.
 */
int	dk_proc_run(char *const *argv, const struct dk_proc_opts *opts,
	    struct dk_proc_result *res, struct dk_error *err);

void	dk_proc_result_free(struct dk_proc_result *res);

/*
 * Word a wait status into buf: "exited with status 3", "killed by signal
 * 9"; 0 when it exited 0, -1 otherwise.
 */
int	dk_proc_describe(int status, char *buf, size_t len);

#endif
