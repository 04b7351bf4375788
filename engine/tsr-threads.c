/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "tsr-threads.h"
#include "tsr-cpu.h"
#include "tsr-error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause ()
#else
#define cpu_relax() ((void) 0)
#endif

/* How long an idle worker keeps polling before it sleeps. */
#define SPIN_NS (5 * 1000 * 1000)

typedef struct {
  TsrPool *pool;
  int      ith;
} Worker;

struct TsrPool
{
  int              n;
  pthread_t       *threads;
  Worker          *workers;

  TsrPoolFn        fn;
  void            *ctx;
  atomic_uint      generation;   /* bumped once per job */
  atomic_int       pending;      /* workers still inside the job */
  atomic_int       rest;         /* "stop spinning" request */
  atomic_int       sleepers;
  int              quit;
  pthread_mutex_t  mu;
  pthread_cond_t   cv;

  atomic_int       barrier_count;
  atomic_uint      barrier_phase;
};

static long long
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static unsigned
wait_for_job (TsrPool *pool, unsigned seen)
{
  long long deadline = now_ns () + SPIN_NS;
  unsigned g;

  for (int i = 0;; i++)
    {
      g = atomic_load_explicit (&pool->generation, memory_order_acquire);
      if (g != seen)
        return g;
      if (atomic_load_explicit (&pool->rest, memory_order_relaxed))
        break;
      cpu_relax ();
      if ((i & 1023) == 1023 && now_ns () > deadline)
        break;
    }

  pthread_mutex_lock (&pool->mu);
  atomic_fetch_add (&pool->sleepers, 1);
  /* Re-read under the lock: tsr_pool_run bumps the generation, then
   * broadcasts under this lock if it saw a sleeper, so no wake-up is lost. */
  while ((g = atomic_load (&pool->generation)) == seen && !pool->quit)
    pthread_cond_wait (&pool->cv, &pool->mu);
  atomic_fetch_sub (&pool->sleepers, 1);
  pthread_mutex_unlock (&pool->mu);
  return g;
}

static void *
worker_main (void *arg)
{
  Worker *w = arg;
  TsrPool *pool = w->pool;
  unsigned seen = 0;

  for (;;)
    {
      seen = wait_for_job (pool, seen);
      if (pool->quit)
        break;
      pool->fn (pool->ctx, w->ith, pool->n);
      atomic_fetch_sub_explicit (&pool->pending, 1, memory_order_release);
    }
  return NULL;
}

TsrStatus
tsr_pool_new (int n_threads, TsrPool **out, TsrError *err)
{
  TsrPool *pool;

  *out = NULL;
  if (n_threads < 0 || n_threads > 1024)
    return tsr_error_set (err, TSR_EINVAL, "%d threads is out of range; use 1 to 1024, or 0 for "
                          "one per core.", n_threads);
  if (n_threads == 0)
    n_threads = tsr_cpu ()->physical_cores;
  if (n_threads < 1)
    n_threads = 1;

  pool = calloc (1, sizeof *pool);
  if (pool == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory starting the worker threads.");
  pool->n = n_threads;
  pthread_mutex_init (&pool->mu, NULL);
  pthread_cond_init (&pool->cv, NULL);
  atomic_init (&pool->generation, 0);
  atomic_init (&pool->pending, 0);
  atomic_init (&pool->rest, 0);
  atomic_init (&pool->sleepers, 0);
  atomic_init (&pool->barrier_count, 0);
  atomic_init (&pool->barrier_phase, 0);

  if (n_threads > 1)
    {
      pool->threads = calloc ((size_t) n_threads, sizeof *pool->threads);
      pool->workers = calloc ((size_t) n_threads, sizeof *pool->workers);
      if (pool->threads == NULL || pool->workers == NULL)
        {
          tsr_pool_free (pool);
          return tsr_error_set (err, TSR_ENOMEM, "Out of memory starting the worker threads.");
        }
      for (int i = 1; i < n_threads; i++)
        {
          pool->workers[i].pool = pool;
          pool->workers[i].ith = i;
          if (pthread_create (&pool->threads[i], NULL, worker_main, &pool->workers[i]) != 0)
            {
              pool->n = i;   /* free joins only the threads that started */
              tsr_pool_free (pool);
              return tsr_error_set (err, TSR_ENOMEM, "Could not start worker thread %d of %d; "
                                    "try fewer threads.", i + 1, n_threads);
            }
        }
    }
  *out = pool;
  return TSR_OK;
}

void
tsr_pool_free (TsrPool *pool)
{
  if (pool == NULL)
    return;
  if (pool->threads != NULL)
    {
      pthread_mutex_lock (&pool->mu);
      pool->quit = 1;
      atomic_fetch_add (&pool->generation, 1);
      pthread_cond_broadcast (&pool->cv);
      pthread_mutex_unlock (&pool->mu);
      for (int i = 1; i < pool->n; i++)
        pthread_join (pool->threads[i], NULL);
    }
  pthread_cond_destroy (&pool->cv);
  pthread_mutex_destroy (&pool->mu);
  free (pool->threads);
  free (pool->workers);
  free (pool);
}

int
tsr_pool_size (const TsrPool *pool)
{
  return pool->n;
}

void
tsr_pool_run (TsrPool *pool, TsrPoolFn fn, void *ctx)
{
  if (pool->n == 1)
    {
      fn (ctx, 0, 1);
      return;
    }
  pool->fn = fn;
  pool->ctx = ctx;
  atomic_store (&pool->rest, 0);
  atomic_store (&pool->pending, pool->n - 1);
  atomic_fetch_add (&pool->generation, 1);
  if (atomic_load (&pool->sleepers) > 0)
    {
      pthread_mutex_lock (&pool->mu);
      pthread_cond_broadcast (&pool->cv);
      pthread_mutex_unlock (&pool->mu);
    }
  fn (ctx, 0, pool->n);
  while (atomic_load_explicit (&pool->pending, memory_order_acquire) > 0)
    cpu_relax ();
}

void
tsr_pool_barrier (TsrPool *pool)
{
  unsigned phase;
  if (pool->n == 1)
    return;
  phase = atomic_load_explicit (&pool->barrier_phase, memory_order_acquire);
  if (atomic_fetch_add (&pool->barrier_count, 1) == pool->n - 1)
    {
      atomic_store (&pool->barrier_count, 0);
      atomic_fetch_add_explicit (&pool->barrier_phase, 1, memory_order_release);
      return;
    }
  while (atomic_load_explicit (&pool->barrier_phase, memory_order_acquire) == phase)
    cpu_relax ();
}

void
tsr_pool_rest (TsrPool *pool)
{
  atomic_store (&pool->rest, 1);
}
