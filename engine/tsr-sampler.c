/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-sampler.c — picking the next token the way transformers does
 * (model.md §8.3): repetition penalty, then the argmax, or temperature →
 * top-k → top-p and a draw.
 */
#include "tsr-sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tsr-error.h"

/* ==== Parameters ======================================================== */

TsrGenParams
tsr_gen_default_params (void)
{
  TsrGenParams p;
  memset (&p, 0, sizeof p);
  p.mode = TSR_GEN_GREEDY;
  p.max_new_tokens = 1024;
  p.repetition_penalty = 1.005f;
  p.temperature = 1.0f;
  p.top_k = 50;
  p.top_p = 0.8f;
  p.seed = 0;
  p.n_beams = 3;
  p.length_penalty = 1.0f;
  return p;
}

TsrStatus
tsr_gen_check_params (const TsrGenParams *p, TsrError *err)
{
  if (p == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No generation settings were given.");
  if (p->mode != TSR_GEN_GREEDY && p->mode != TSR_GEN_SAMPLE && p->mode != TSR_GEN_BEAM)
    return tsr_error_set (err, TSR_EINVAL, "Generation mode %d is not greedy, sampling or beams.", (int) p->mode);
  if (p->max_new_tokens < 0 || p->max_new_tokens > TSR_LLM_MAX_CONTEXT)
    return tsr_error_set (err, TSR_EINVAL, "max_new_tokens %d is out of range (0 to %d).", p->max_new_tokens,
                          TSR_LLM_MAX_CONTEXT);
  if (!(p->repetition_penalty > 0) || !isfinite (p->repetition_penalty))
    return tsr_error_set (err, TSR_EINVAL, "The repetition penalty must be a positive number, not %g.",
                          (double) p->repetition_penalty);
  if (p->mode == TSR_GEN_SAMPLE)
    {
      if (!(p->temperature > 0) || !isfinite (p->temperature))
        return tsr_error_set (err, TSR_EINVAL, "Sampling needs a temperature above 0, not %g; use greedy "
                              "decoding for 0.", (double) p->temperature);
      if (p->top_k < 0)
        return tsr_error_set (err, TSR_EINVAL, "top_k must be 0 (off) or more, not %d.", p->top_k);
      if (!(p->top_p > 0 && p->top_p <= 1))
        return tsr_error_set (err, TSR_EINVAL, "top_p must be in (0, 1], not %g.", (double) p->top_p);
    }
  if (p->mode == TSR_GEN_BEAM)
    {
      if (p->n_beams < 1 || p->n_beams > TSR_GEN_MAX_BEAMS)
        return tsr_error_set (err, TSR_EINVAL, "Beam search takes 1 to %d beams, not %d.", TSR_GEN_MAX_BEAMS,
                              p->n_beams);
      if (!isfinite (p->length_penalty))
        return tsr_error_set (err, TSR_EINVAL, "The length penalty must be a number.");
    }
  return TSR_OK;
}

/* ==== Id sets =========================================================== */

TsrStatus
tsr_id_set_init (TsrIdSet *s, size_t n_vocab, TsrError *err)
{
  memset (s, 0, sizeof *s);
  s->mark = calloc (n_vocab ? n_vocab : 1, 1);
  s->ids = malloc ((n_vocab ? n_vocab : 1) * sizeof *s->ids);
  s->n_vocab = n_vocab;
  if (s->mark == NULL || s->ids == NULL)
    {
      tsr_id_set_fini (s);
      return tsr_error_set (err, TSR_ENOMEM, "Out of memory for the sampler.");
    }
  return TSR_OK;
}

void
tsr_id_set_fini (TsrIdSet *s)
{
  free (s->mark);
  free (s->ids);
  memset (s, 0, sizeof *s);
}

void
tsr_id_set_clear (TsrIdSet *s)
{
  for (size_t i = 0; i < s->n; i++)
    s->mark[s->ids[i]] = 0;
  s->n = 0;
}

void
tsr_id_set_add (TsrIdSet *s, int32_t id)
{
  if (id < 0 || (size_t) id >= s->n_vocab || s->mark[id])
    return;
  s->mark[id] = 1;
  s->ids[s->n++] = id;
}

/* ==== Processors and warpers ============================================ */

void
tsr_logits_repetition_penalty (float *scores, const int32_t *ids, size_t n_ids, float penalty)
{
  if (penalty == 1.0f)
    return;
  for (size_t i = 0; i < n_ids; i++)
    {
      float s = scores[ids[i]];
      scores[ids[i]] = s < 0 ? s * penalty : s / penalty;
    }
}

void
tsr_logits_temperature (float *scores, size_t n, float t)
{
  for (size_t i = 0; i < n; i++)
    scores[i] /= t;
}

/* The k-th largest of x[0..n) (1 ≤ k ≤ n), by quickselect on a copy
 * with a three-way partition (ties are common among masked scores). */
static float
kth_largest (const float *x, size_t n, size_t k, float *a)
{
  size_t lo = 0, hi = n, want = k - 1;
  memcpy (a, x, n * sizeof *a);
  while (hi - lo > 1)
    {
      float pivot = a[lo + (hi - lo) / 2], t;
      size_t lt = lo, i = lo, gt = hi;
      while (i < gt)
        {
          if (a[i] > pivot)
            {
              t = a[lt], a[lt] = a[i], a[i] = t;
              lt++, i++;
            }
          else if (a[i] < pivot)
            {
              gt--;
              t = a[gt], a[gt] = a[i], a[i] = t;
            }
          else
            i++;
        }
      if (want < lt)
        hi = lt;
      else if (want >= gt)
        lo = gt;
      else
        return pivot;
    }
  return a[lo];
}

void
tsr_logits_top_k (float *scores, size_t n, int k, int min_keep, float *scratch)
{
  size_t kk = (size_t) (k > min_keep ? k : min_keep);
  float thr;
  if (n == 0 || kk >= n)
    return;
  thr = kth_largest (scores, n, kk, scratch);
  for (size_t i = 0; i < n; i++)
    if (scores[i] < thr)
      scores[i] = -INFINITY;
}

static int
cmp_ascending (const void *a, const void *b)
{
  const TsrScoreIdx *x = a, *y = b;
  if (x->s != y->s)
    return x->s < y->s ? -1 : 1;
  /* torch.sort is not stable; index order is as good a tie rule as any. */
  return x->i < y->i ? -1 : 1;
}

void
tsr_logits_top_p (float *scores, size_t n, float p, int min_keep, TsrScoreIdx *v)
{
  size_t m = 0, n_inf, keep = (size_t) (min_keep > 0 ? min_keep : 0);
  double mx = -INFINITY, sum = 0, cum = 0, limit = 1.0 - (double) p;
  /* Scores at −inf have probability 0 and sort first: their cumulative
   * sum is 0 ≤ 1 − p, so they stay removed. Only the rest is sorted. */
  for (size_t i = 0; i < n; i++)
    if (scores[i] != -INFINITY)
      {
        v[m].s = scores[i];
        v[m].i = (uint32_t) i;
        m++;
      }
  n_inf = n - m;
  if (m == 0)
    return;
  qsort (v, m, sizeof *v, cmp_ascending);
  mx = v[m - 1].s;
  for (size_t i = 0; i < m; i++)
    sum += exp ((double) v[i].s - mx);
  for (size_t i = 0; i < m; i++)
    {
      /* The position among all n in ascending order: the last `keep` stay. */
      cum += exp ((double) v[i].s - mx) / sum;
      if (cum <= limit && n_inf + i + keep < n)
        scores[v[i].i] = -INFINITY;
    }
}

void
tsr_logits_log_softmax (float *scores, size_t n)
{
  double mx = -INFINITY, sum = 0, lse;
  for (size_t i = 0; i < n; i++)
    mx = scores[i] > mx ? scores[i] : mx;
  for (size_t i = 0; i < n; i++)
    sum += exp ((double) scores[i] - mx);
  lse = mx + log (sum);
  for (size_t i = 0; i < n; i++)
    scores[i] = (float) ((double) scores[i] - lse);
}

int32_t
tsr_logits_argmax (const float *x, size_t n)
{
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return (int32_t) best;
}

int32_t
tsr_logits_draw (const float *scores, size_t n, double u)
{
  double mx = -INFINITY, sum = 0, acc = 0, r;
  int32_t last = 0;
  for (size_t i = 0; i < n; i++)
    mx = scores[i] > mx ? scores[i] : mx;
  for (size_t i = 0; i < n; i++)
    sum += exp ((double) scores[i] - mx);
  r = u * sum;
  for (size_t i = 0; i < n; i++)
    {
      double e = exp ((double) scores[i] - mx);
      if (e == 0)
        continue;
      acc += e;
      last = (int32_t) i;
      if (acc > r)
        return (int32_t) i;
    }
  return last;   /* rounding left r just above the total */
}

double
tsr_rng_uniform (uint64_t *state)
{
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double) (z >> 11) * (1.0 / 9007199254740992.0);
}

/* ==== The sampler ======================================================= */

struct TsrSampler
{
  TsrGenParams p;
  size_t       n_vocab;
  TsrIdSet     seen;
  uint64_t     rng;
  float       *scratch;
  TsrScoreIdx *idx;
};

TsrStatus
tsr_sampler_new (const TsrGenParams *params, size_t n_vocab, TsrSampler **out, TsrError *err)
{
  TsrSampler *s;
  TsrStatus st;

  *out = NULL;
  if ((st = tsr_gen_check_params (params, err)) != TSR_OK)
    return st;
  if (n_vocab == 0 || n_vocab > UINT32_MAX)
    return tsr_error_set (err, TSR_EINVAL, "A vocabulary of %zu ids is out of range.", n_vocab);
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory for the sampler.");
  s->p = *params;
  s->n_vocab = n_vocab;
  s->rng = params->seed;
  s->scratch = malloc (n_vocab * sizeof *s->scratch);
  s->idx = malloc (n_vocab * sizeof *s->idx);
  if (s->scratch == NULL || s->idx == NULL || tsr_id_set_init (&s->seen, n_vocab, err) != TSR_OK)
    {
      tsr_sampler_free (s);
      return tsr_error_set (err, TSR_ENOMEM, "Out of memory for the sampler.");
    }
  *out = s;
  return TSR_OK;
}

void
tsr_sampler_free (TsrSampler *s)
{
  if (s == NULL)
    return;
  tsr_id_set_fini (&s->seen);
  free (s->scratch);
  free (s->idx);
  free (s);
}

void
tsr_sampler_reset (TsrSampler *s)
{
  tsr_id_set_clear (&s->seen);
  s->rng = s->p.seed;
}

void
tsr_sampler_accept (TsrSampler *s, const int32_t *ids, size_t n)
{
  for (size_t i = 0; i < n; i++)
    tsr_id_set_add (&s->seen, ids[i]);
}

int32_t
tsr_sampler_next (TsrSampler *s, float *logits)
{
  size_t n = s->n_vocab;
  tsr_logits_repetition_penalty (logits, s->seen.ids, s->seen.n, s->p.repetition_penalty);
  if (s->p.mode != TSR_GEN_SAMPLE)
    return tsr_logits_argmax (logits, n);
  /* transformers adds each warper only when it would change something. */
  if (s->p.temperature != 1.0f)
    tsr_logits_temperature (logits, n, s->p.temperature);
  if (s->p.top_k != 0)
    tsr_logits_top_k (logits, n, s->p.top_k, 1, s->scratch);
  if (s->p.top_p < 1.0f)
    tsr_logits_top_p (logits, n, s->p.top_p, 1, s->idx);
  return tsr_logits_draw (logits, n, tsr_rng_uniform (&s->rng));
}
