/*
 * daemon/keygen_pool.c — keys generated ahead, on every core.
 *
 * A rotation of many domains used to generate one key after another on
 * one thread, and between two keys wait for that domain's file and state
 * commits: keys came at most one core's speed, and none while the disk
 * was busy.  Any fresh key serves any domain (its file name comes from its
 * own id), so the first generation of a process starts a thread per core
 * that keeps a few keys of that spec ready; every later generation of the
 * same spec takes one of them (waiting for the one in progress if need
 * be) while the threads make the next.  The threads start at the second
 * generation of a process: a lone rotation (rotate, run --domain) never
 * starts them.  Keys are held in memory only:
 * nothing is written here, so a crash loses nothing but CPU time; the
 * caller saves and commits a taken key exactly as one it generated.
 *
 * Waste is bounded: the threads stay that many keys ahead of what was
 * taken: a bulk rotation ends with at most that many spare keys.  Threads block every signal (the scheduler takes them), and
 * dk_keypool_stop (registered with atexit) joins them before OpenSSL is
 * torn down.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/key.h"
#include "daemon.h"

#define POOL_THREADS_MAX	16
#define POOL_AHEAD_PER_THREAD	2

static struct {
	pthread_mutex_t		 mu;
	pthread_cond_t		 more;		/* a key was added */
	pthread_cond_t		 work;		/* room for a key */
	pthread_t		 th[POOL_THREADS_MAX];
	size_t			 nth;
	int			 started, stop;
	unsigned long		 calls;
	struct dk_keyspec	 spec;
	struct dk_key		*ready[POOL_THREADS_MAX * POOL_AHEAD_PER_THREAD];
	size_t			 nready, busy, ahead;
	unsigned long		 made, taken;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	    PTHREAD_COND_INITIALIZER, { 0 }, 0, 0, 0, 0, { 0, 0 }, { NULL },
	    0, 0, 0, 0, 0 };

static void *
producer(void *arg)
{
	struct dk_keyspec spec;
	struct dk_key *key;
	struct dk_error err;

	(void)arg;
	pthread_mutex_lock(&pool.mu);
	for (;;) {
		while (!pool.stop && pool.nready + pool.busy >= pool.ahead)
			pthread_cond_wait(&pool.work, &pool.mu);
		if (pool.stop)
			break;
		pool.busy++;
		spec = pool.spec;
		pthread_mutex_unlock(&pool.mu);
		memset(&err, 0, sizeof(err));
		if (dk_key_generate(&spec, &key, &err) != DK_OK)
			key = NULL;
		pthread_mutex_lock(&pool.mu);
		pool.busy--;
		if (key == NULL)
			/* Failing: callers generate, and report why. */
			pool.ahead = 0;
		else if (!pool.stop && spec.alg == pool.spec.alg &&
		    spec.bits == pool.spec.bits &&
		    pool.nready < pool.ahead) {
			pool.ready[pool.nready++] = key;
			pool.made++;
			key = NULL;
		}
		/* (A key of another spec than now wanted is dropped.) */
		pthread_cond_broadcast(&pool.more);
		if (key != NULL) {
			pthread_mutex_unlock(&pool.mu);
			dk_key_free(key);
			pthread_mutex_lock(&pool.mu);
		}
	}
	pthread_mutex_unlock(&pool.mu);
	return NULL;
}

/* Caller holds pool.mu. */
static void
start_locked(const struct dk_keyspec *spec)
{
	sigset_t all, old;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	size_t i;

	pool.started = 1;
	pool.spec = *spec;
	pool.nth = n < 1 ? 1 : n > POOL_THREADS_MAX ? POOL_THREADS_MAX :
	    (size_t)n;
	pool.ahead = pool.nth * POOL_AHEAD_PER_THREAD;
	/* Signals are for the scheduler's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < pool.nth; i++)
		if (pthread_create(&pool.th[i], NULL, producer, NULL) != 0)
			break;
	pool.nth = i;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pool.nth == 0)
		pool.ahead = 0;
	else
		atexit(dk_keypool_stop);
}

struct dk_key *
dk_keypool_take(const struct dk_keyspec *spec)
{
	struct dk_key *key = NULL, *drop[POOL_THREADS_MAX *
	    POOL_AHEAD_PER_THREAD];
	size_t ndrop = 0, i;

	pthread_mutex_lock(&pool.mu);
	if (pool.stop) {
		pthread_mutex_unlock(&pool.mu);
		return NULL;
	}
	if (!pool.started) {
		/* This one the caller makes itself, meanwhile. */
		if (++pool.calls >= 2)
			start_locked(spec);
		pthread_cond_broadcast(&pool.work);
		pthread_mutex_unlock(&pool.mu);
		return NULL;
	}
	if (spec->alg != pool.spec.alg || spec->bits != pool.spec.bits) {
		/* Another spec from now on (mixed domains): restart ahead. */
		ndrop = pool.nready;
		memcpy(drop, pool.ready, ndrop * sizeof(*drop));
		pool.nready = 0;
		pool.spec = *spec;
	}
	/* Threads work while fewer than ahead are ready or in progress:
	 * one is on its way. */
	pthread_cond_broadcast(&pool.work);
	while (pool.nready == 0 && pool.ahead > 0 && !pool.stop)
		pthread_cond_wait(&pool.more, &pool.mu);
	if (pool.nready > 0) {
		key = pool.ready[--pool.nready];
		pool.taken++;
	}
	pthread_cond_broadcast(&pool.work);
	pthread_mutex_unlock(&pool.mu);
	for (i = 0; i < ndrop; i++)
		dk_key_free(drop[i]);
	return key;
}

void
dk_keypool_stop(void)
{
	size_t i;

	pthread_mutex_lock(&pool.mu);
	if (!pool.started || pool.stop) {
		pool.stop = 1;
		pthread_mutex_unlock(&pool.mu);
		return;
	}
	pool.stop = 1;
	pthread_cond_broadcast(&pool.work);
	pthread_cond_broadcast(&pool.more);
	pthread_mutex_unlock(&pool.mu);
	for (i = 0; i < pool.nth; i++)
		pthread_join(pool.th[i], NULL);
	for (i = 0; i < pool.nready; i++)
		dk_key_free(pool.ready[i]);
	pool.nready = 0;
}
