/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-threads.h — the engine's worker pool. A job is one function run on
 * every thread at once with its index (ith of nth), the caller's thread
 * being thread 0; the function splits the work by ith/nth.
 *
 * Waking a sleeping thread costs about 20 ms on the virtual machines this
 * runs on (performance.md), more than a whole mat-vec, so workers spin for
 * a few milliseconds after each job before they sleep: consecutive jobs of
 * one forward pass find them awake, and an idle engine costs no CPU.
 */
#ifndef TSR_THREADS_H
#define TSR_THREADS_H

#include "tessera-engine.h"


typedef void (*TsrPoolFn) (void *ctx, int ith, int nth);

/* n_threads ≥ 1 counts the caller; 0 means one per physical core. */
TsrStatus tsr_pool_new     (int n_threads, TsrPool **pool, TsrError *err);
void      tsr_pool_free    (TsrPool *pool);
int       tsr_pool_size    (const TsrPool *pool);

/* Runs fn (ctx, ith, nth) on all threads and returns when all are done.
 * Not re-entrant: one job at a time per pool. */
void      tsr_pool_run     (TsrPool *pool, TsrPoolFn fn, void *ctx);

/* Inside a job: waits until every thread of the job has arrived. */
void      tsr_pool_barrier (TsrPool *pool);

/* Sends spinning workers to sleep now, before the caller hands the CPU
 * to another thread pool (a multi-threaded BLAS call, say). */
void      tsr_pool_rest    (TsrPool *pool);

#endif
