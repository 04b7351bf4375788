/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-image.c — the pixels the vision tower sees: the HD canvas, its
 * normalisation, the global view and the tiles (model.md §6.2–6.4).
 *
 * Exactness comes first. The canvas must equal, byte for byte, what the
 * official code gets from Pillow's BILINEAR resize and white padding, and
 * the float tensors must equal torchvision's ToTensor + Normalize and
 * torch's bicubic interpolate up to float rounding. So the arithmetic here
 * keeps the reference's number formats — double weights turned into 22-bit
 * fixed point, int32 sums, a round to uint8 between the two passes; float32
 * for the tensors — even where something else would be simpler or faster.
 *
 * Memory: the resize streams. A landscape image is resized horizontally
 * first, and each output row needs a window of horizontally resized input
 * rows: a ring of that many rows is all we keep. A portrait image runs the
 * passes in the other order (the reference transposes it, resizes
 * "horizontally first" in that frame — i.e. vertically — and transposes
 * back), and each output row needs one vertically combined row. Either way
 * the working memory is a few rows, however large the input.
 */
#include "tsr-image.h"
#include "tsr-error.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ==== Small helpers ===================================================== */

/* a·b into *out unless it overflows size_t. */
static int
mul_size (size_t a, size_t b, size_t *out)
{
  if (a != 0 && b > SIZE_MAX / a)
    return 0;
  *out = a * b;
  return 1;
}

static int
add_size (size_t a, size_t b, size_t *out)
{
  if (b > SIZE_MAX - a)
    return 0;
  *out = a + b;
  return 1;
}

/* Scratch blocks are carved out of one allocation; keep each aligned for
 * int32 and pointers. */
static size_t
align16 (size_t n)
{
  return (n + 15) & ~(size_t) 15;
}

static double
mib (size_t bytes)
{
  return (double) bytes / (1024.0 * 1024.0);
}

int
tsr_image_thread_count (int n_threads)
{
  if (n_threads <= 0)
    {
      long n = sysconf (_SC_NPROCESSORS_ONLN);
      n_threads = n > 0 && n < INT_MAX ? (int) n : 1;
    }
  return n_threads > TSR_IMAGE_THREADS_MAX ? TSR_IMAGE_THREADS_MAX : n_threads;
}

/* ---- A parallel for over [0, n_items) in contiguous bands ---------------- */

typedef void (*RangeFunc) (void *ctx, int begin, int end, int worker);

typedef struct {
  RangeFunc fn;
  void     *ctx;
  int       begin, end, worker;
} Band;

static void *
band_main (void *data)
{
  Band *b = data;
  b->fn (b->ctx, b->begin, b->end, b->worker);
  return NULL;
}

/* Workers are numbered 0..n_workers−1 so each can own a scratch slot. A
 * thread that cannot be started is not an error: its band runs here. */
static void
run_bands (int n_workers, int n_items, RangeFunc fn, void *ctx)
{
  Band bands[TSR_IMAGE_THREADS_MAX];
  pthread_t threads[TSR_IMAGE_THREADS_MAX];
  int started[TSR_IMAGE_THREADS_MAX];

  if (n_workers > n_items)
    n_workers = n_items;
  if (n_workers <= 1)
    {
      if (n_items > 0)
        fn (ctx, 0, n_items, 0);
      return;
    }
  for (int w = 0; w < n_workers; w++)
    {
      bands[w].fn = fn;
      bands[w].ctx = ctx;
      bands[w].begin = (int) ((int64_t) n_items * w / n_workers);
      bands[w].end = (int) ((int64_t) n_items * (w + 1) / n_workers);
      bands[w].worker = w;
      started[w] = 0;
    }
  for (int w = 1; w < n_workers; w++)
    started[w] = pthread_create (&threads[w], NULL, band_main, &bands[w]) == 0;
  band_main (&bands[0]);
  for (int w = 1; w < n_workers; w++)
    {
      if (started[w])
        pthread_join (threads[w], NULL);
      else
        band_main (&bands[w]);
    }
}

/* ==== Argument checks =================================================== */

static TsrStatus
check_image (const TsrImage *im, const char *what, TsrError *err)
{
  size_t row, last;

  if (im == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No %s was given (NULL).", what);
  if (im->width <= 0 || im->height <= 0)
    return tsr_error_set (err, TSR_EINVAL,
                          "The %s has no pixels (%d×%d); give an image with content.",
                          what, im->width, im->height);
  if (im->width > TSR_IMAGE_SIDE_MAX || im->height > TSR_IMAGE_SIDE_MAX)
    return tsr_error_set (err, TSR_ETOOLARGE,
                          "The %s is %d×%d pixels; sides above %d are not supported. "
                          "Scale it down or crop it first.",
                          what, im->width, im->height, TSR_IMAGE_SIDE_MAX);
  if (im->rgb == NULL)
    return tsr_error_set (err, TSR_EINVAL, "The %s has no pixel data (NULL).", what);
  row = (size_t) 3 * (size_t) im->width;
  if (im->stride < row)
    return tsr_error_set (err, TSR_EINVAL,
                          "The %s's rows are %zu bytes apart, but %d RGB pixels need %zu; "
                          "the stride must be at least 3×width.",
                          what, im->stride, im->width, row);
  if (!mul_size (im->stride, (size_t) im->height - 1, &last) || !add_size (last, row, &last))
    return tsr_error_set (err, TSR_ETOOLARGE,
                          "The %s's rows (%zu bytes apart, %d rows) do not fit in this "
                          "machine's address space.", what, im->stride, im->height);
  return TSR_OK;
}

/* A plan is trusted only if it is what the planner says for its own size
 * and budget: every buffer size below comes from it. */
static TsrStatus
check_plan (const TsrHdPlan *plan, TsrError *err)
{
  TsrHdPlan fresh;
  TsrStatus st;

  if (plan == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No plan was given (NULL); make one with tsr_hd_plan.");
  st = tsr_hd_plan (plan->width, plan->height, plan->hd_num, &fresh, err);
  if (st != TSR_OK)
    return st;
  if (fresh.transposed != plan->transposed ||
      fresh.resized_w != plan->resized_w || fresh.resized_h != plan->resized_h ||
      fresh.padded_w != plan->padded_w || fresh.padded_h != plan->padded_h ||
      fresh.pad_x != plan->pad_x || fresh.pad_y != plan->pad_y ||
      fresh.rows != plan->rows || fresh.cols != plan->cols || fresh.tiles != plan->tiles)
    return tsr_error_set (err, TSR_EINVAL,
                          "The plan differs from what tsr_hd_plan gives for a %d×%d image at "
                          "HD-%d; pass the plan it returned, unchanged.",
                          plan->width, plan->height, plan->hd_num);
  return TSR_OK;
}

/* ==== Pillow's BILINEAR resample ======================================== *
 *
 * One pass maps in_size samples to out_size along an axis. Output index o
 * sits at centre (o+0.5)·scale in input coordinates; it reads the inputs
 * whose triangle filter — widened by the scale when shrinking, which is
 * what makes Pillow's bilinear antialiased — reaches it. Weights are
 * normalised in double, then rounded to fixed point; sums are int32 with
 * half an LSB added, shifted back and clamped to a byte.
 */

#define FIX_BITS 22
#define FIX_HALF (1 << (FIX_BITS - 1))

typedef struct {
  int      out_size;
  int      ksize;     /* weights stored per output index */
  int     *first;     /* first input index each output reads */
  int     *count;     /* how many consecutive inputs it reads */
  int32_t *weights;   /* out_size × ksize */
} Taps;

static double
taps_filter_scale (int in_size, int out_size)
{
  double scale = (double) in_size / (double) out_size;
  return scale < 1.0 ? 1.0 : scale;
}

/* Pillow sizes its weight rows from the filter's reach, not from the
 * widest row actually used; we do the same so scratch sizes are known
 * before any weight is computed. */
static int
taps_ksize (int in_size, int out_size)
{
  return (int) ceil (taps_filter_scale (in_size, out_size)) * 2 + 1;
}

static size_t
taps_bytes (int in_size, int out_size)
{
  size_t per_out = 2 * sizeof (int) + (size_t) taps_ksize (in_size, out_size) * sizeof (int32_t);
  return align16 ((size_t) out_size * per_out);
}

static double
tent (double x)
{
  if (x < 0.0)
    x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* Fills t from mem (taps_bytes long); w is ksize doubles of scratch. */
static void
taps_init (Taps *t, int in_size, int out_size, void *mem, double *w)
{
  double scale = (double) in_size / (double) out_size;
  double fscale = taps_filter_scale (in_size, out_size);
  double support = fscale;          /* the triangle's radius is 1 */
  double inv = 1.0 / fscale;        /* Pillow multiplies by the reciprocal */
  unsigned char *p = mem;

  t->out_size = out_size;
  t->ksize = taps_ksize (in_size, out_size);
  t->weights = (int32_t *) (void *) p;
  p += (size_t) out_size * t->ksize * sizeof (int32_t);
  t->first = (int *) (void *) p;
  p += (size_t) out_size * sizeof (int);
  t->count = (int *) (void *) p;

  for (int o = 0; o < out_size; o++)
    {
      double center = (o + 0.5) * scale;
      int lo = (int) (center - support + 0.5);
      int hi = (int) (center + support + 0.5);
      double sum = 0.0;
      int32_t *k = t->weights + (size_t) o * t->ksize;

      if (lo < 0)
        lo = 0;
      if (hi > in_size)
        hi = in_size;
      if (hi - lo > t->ksize)   /* cannot happen; keeps the writes in bounds regardless */
        hi = lo + t->ksize;
      for (int i = 0; i < hi - lo; i++)
        {
          w[i] = tent (((double) (i + lo) - center + 0.5) * inv);
          sum += w[i];
        }
      for (int i = 0; i < hi - lo; i++)
        {
          double v = sum != 0.0 ? w[i] / sum : w[i];
          k[i] = (int32_t) (v < 0.0 ? v * (1 << FIX_BITS) - 0.5 : v * (1 << FIX_BITS) + 0.5);
        }
      t->first[o] = lo;
      t->count[o] = hi > lo ? hi - lo : 0;
    }
}

/* Sums at or below zero give 0, as in Pillow; written as two clamps so the
 * compiler can keep it free of branches. */
static inline unsigned char
clip8 (int32_t acc)
{
  int32_t v = (acc < 0 ? 0 : acc) >> FIX_BITS;
  return (unsigned char) (v > 255 ? 255 : v);
}

/* One row, resampled along x: src has the input width, dst t->out_size. */
static void
resample_row (const unsigned char *src, unsigned char *dst, const Taps *t)
{
  for (int o = 0; o < t->out_size; o++)
    {
      const int32_t *k = t->weights + (size_t) o * t->ksize;
      const unsigned char *p = src + (size_t) 3 * t->first[o];
      int32_t r = FIX_HALF, g = FIX_HALF, b = FIX_HALF;
      for (int i = 0; i < t->count[o]; i++, p += 3)
        {
          r += p[0] * k[i];
          g += p[1] * k[i];
          b += p[2] * k[i];
        }
      dst[3 * o + 0] = clip8 (r);
      dst[3 * o + 1] = clip8 (g);
      dst[3 * o + 2] = clip8 (b);
    }
}

/* One output row of a pass along y: the weighted sum of n rows of len
 * bytes. Integer sums do not care about order, so we may sweep whole rows
 * into int32 sums; the usual short windows (up to four rows: any upscale,
 * or shrinking by less than 1.5) go in one sweep, missing rows weighing 0. */
static void
combine_rows (const unsigned char *const *rows, const int32_t *k, int n, size_t len,
              int32_t *restrict acc, unsigned char *restrict dst)
{
  if (n <= 0)
    {
      memset (dst, clip8 (FIX_HALF), len);
      return;
    }
  if (n <= 4)
    {
      const unsigned char *restrict r0 = rows[0];
      const unsigned char *restrict r1 = n > 1 ? rows[1] : r0;
      const unsigned char *restrict r2 = n > 2 ? rows[2] : r0;
      const unsigned char *restrict r3 = n > 3 ? rows[3] : r0;
      int32_t k0 = k[0], k1 = n > 1 ? k[1] : 0, k2 = n > 2 ? k[2] : 0, k3 = n > 3 ? k[3] : 0;
      for (size_t x = 0; x < len; x++)
        dst[x] = clip8 (FIX_HALF + r0[x] * k0 + r1[x] * k1 + r2[x] * k2 + r3[x] * k3);
      return;
    }
  for (size_t x = 0; x < len; x++)
    acc[x] = FIX_HALF;
  for (int i = 0; i < n; i++)
    {
      const unsigned char *restrict r = rows[i];
      int32_t w = k[i];
      for (size_t x = 0; x < len; x++)
        acc[x] += r[x] * w;
    }
  for (size_t x = 0; x < len; x++)
    dst[x] = clip8 (acc[x]);
}

/* ==== The HD canvas ===================================================== */

/* What one worker needs, and what the call needs in all. */
typedef struct {
  size_t ring;        /* landscape: horizontally resized rows awaiting the vertical pass */
  size_t row;         /* portrait: one vertically combined row */
  size_t ptrs;        /* row pointers of one vertical window */
  size_t acc;         /* int32 sums of one row */
  size_t per_worker;
  size_t taps;        /* both passes' weights, shared by the workers */
  size_t weights_tmp; /* doubles for one weight row while the taps are built */
  size_t total;
} Layout;

static int
layout_for (const TsrHdPlan *p, int n_workers, Layout *l)
{
  int need_h = p->resized_w != p->width;
  int need_v = p->resized_h != p->height;
  int kv = taps_ksize (p->height, p->resized_h);
  int kh = taps_ksize (p->width, p->resized_w);
  int ring_rows = need_v ? kv : 1;
  size_t mid_w = p->transposed ? (size_t) p->width : (size_t) p->resized_w;
  size_t t;

  memset (l, 0, sizeof *l);
  if (!p->transposed && need_h)
    {
      if (!mul_size ((size_t) ring_rows, 3 * mid_w, &l->ring))
        return 0;
      l->ring = align16 (l->ring);
    }
  if (p->transposed && need_v)
    l->row = align16 (3 * mid_w);
  l->ptrs = align16 ((size_t) (need_v ? kv : 1) * sizeof (void *));
  l->acc = need_v ? align16 (3 * mid_w * sizeof (int32_t)) : 0;
  l->per_worker = l->ring + l->row + l->ptrs + l->acc;
  l->taps = taps_bytes (p->width, p->resized_w) + taps_bytes (p->height, p->resized_h);
  l->weights_tmp = align16 ((size_t) (kh > kv ? kh : kv) * sizeof (double));
  if (!mul_size (l->per_worker, (size_t) n_workers, &t) ||
      !add_size (t, l->taps, &t) || !add_size (t, l->weights_tmp, &l->total))
    return 0;
  return 1;
}

typedef struct {
  const TsrImage  *image;
  const TsrHdPlan *plan;
  unsigned char   *canvas;
  size_t           canvas_stride;
  Taps             h, v;
  int              need_h, need_v;
  Layout           layout;
  unsigned char   *scratch;   /* per-worker blocks, layout.per_worker each */
} CanvasJob;

static const unsigned char *
input_row (const TsrImage *im, int y)
{
  return im->rgb + (size_t) y * im->stride;
}

/* The canvas row that output row yy of the resized image lands on, with
 * the white bars on either side of it painted. */
static unsigned char *
canvas_row (CanvasJob *job, int yy)
{
  const TsrHdPlan *p = job->plan;
  unsigned char *row = job->canvas + (size_t) (yy + p->pad_y) * job->canvas_stride;
  size_t left = (size_t) 3 * p->pad_x;
  size_t data = (size_t) 3 * p->resized_w;
  memset (row, 255, left);
  memset (row + left + data, 255, (size_t) 3 * p->padded_w - left - data);
  return row + left;
}

static void
canvas_landscape (void *ctx, int y0, int y1, int worker)
{
  CanvasJob *job = ctx;
  const Layout *l = &job->layout;
  unsigned char *s = job->scratch + (size_t) worker * l->per_worker;
  unsigned char *ring = s;
  const unsigned char **win = (const unsigned char **) (void *) (s + l->ring);
  int32_t *acc = (int32_t *) (void *) (s + l->ring + l->ptrs);
  size_t out_row = (size_t) 3 * job->plan->resized_w;
  int ring_rows = job->need_v ? job->v.ksize : 1;
  int next = 0;   /* first input row not yet in the ring */

  for (int yy = y0; yy < y1; yy++)
    {
      int first = job->need_v ? job->v.first[yy] : yy;
      int n = job->need_v ? job->v.count[yy] : 1;
      unsigned char *dst = canvas_row (job, yy);

      /* Windows only move forward, and are at most ring_rows long, so a
       * row's slot is reused only once no window needs that row again. */
      if (next < first)
        next = first;
      for (int r = next; r < first + n; r++)
        if (job->need_h)
          resample_row (input_row (job->image, r), ring + (size_t) (r % ring_rows) * out_row, &job->h);
      next = first + n;

      for (int i = 0; i < n; i++)
        win[i] = job->need_h ? ring + (size_t) ((first + i) % ring_rows) * out_row
                             : input_row (job->image, first + i);
      if (job->need_v)
        combine_rows (win, job->v.weights + (size_t) yy * job->v.ksize, n, out_row, acc, dst);
      else
        memcpy (dst, win[0], out_row);
    }
}

static void
canvas_portrait (void *ctx, int y0, int y1, int worker)
{
  CanvasJob *job = ctx;
  const Layout *l = &job->layout;
  unsigned char *s = job->scratch + (size_t) worker * l->per_worker;
  unsigned char *mid = s;
  const unsigned char **win = (const unsigned char **) (void *) (s + l->row);
  int32_t *acc = (int32_t *) (void *) (s + l->row + l->ptrs);
  size_t in_row = (size_t) 3 * job->image->width;

  for (int yy = y0; yy < y1; yy++)
    {
      const unsigned char *src;
      unsigned char *dst = canvas_row (job, yy);

      if (job->need_v)
        {
          int first = job->v.first[yy], n = job->v.count[yy];
          for (int i = 0; i < n; i++)
            win[i] = input_row (job->image, first + i);
          combine_rows (win, job->v.weights + (size_t) yy * job->v.ksize, n, in_row, acc, mid);
          src = mid;
        }
      else
        src = input_row (job->image, yy);

      if (job->need_h)
        resample_row (src, dst, &job->h);
      else
        memcpy (dst, src, in_row);
    }
}

TsrStatus
tsr_image_sizes (const TsrHdPlan *plan, int n_threads, TsrImageSizes *sizes, TsrError *err)
{
  Layout l;
  size_t pixels;
  TsrStatus st;

  if (sizes == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No place for the sizes was given (NULL).");
  memset (sizes, 0, sizeof *sizes);
  if ((st = check_plan (plan, err)) != TSR_OK)
    return st;
  if (!layout_for (plan, tsr_image_thread_count (n_threads), &l) ||
      !mul_size ((size_t) plan->padded_w, (size_t) plan->padded_h, &pixels) ||
      !mul_size (pixels, 3, &sizes->canvas_bytes) ||
      !mul_size (sizes->canvas_bytes, sizeof (float), &sizes->tensor_bytes))
    return tsr_error_set (err, TSR_ETOOLARGE,
                          "Preprocessing a %d×%d image at HD-%d needs more memory than this "
                          "machine can address; choose a smaller HD-N.",
                          plan->width, plan->height, plan->hd_num);
  sizes->view_bytes = (size_t) 3 * TSR_TILE_SIZE * TSR_TILE_SIZE * sizeof (float);
  sizes->scratch_bytes = l.total;
  tsr_error_clear (err);
  return TSR_OK;
}

TsrStatus
tsr_image_hd_canvas (const TsrImage *image, const TsrHdPlan *plan, int n_threads,
                     unsigned char *canvas, TsrError *err)
{
  CanvasJob job;
  TsrStatus st;
  int workers;
  unsigned char *mem, *p;

  if ((st = check_image (image, "image", err)) != TSR_OK ||
      (st = check_plan (plan, err)) != TSR_OK)
    return st;
  if (plan->width != image->width || plan->height != image->height)
    return tsr_error_set (err, TSR_EINVAL,
                          "The plan is for a %d×%d image, but the pixels are %d×%d; plan this "
                          "image with tsr_hd_plan.",
                          plan->width, plan->height, image->width, image->height);
  if (canvas == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No canvas buffer was given (NULL).");

  workers = tsr_image_thread_count (n_threads);
  if (workers > plan->resized_h)
    workers = plan->resized_h;
  memset (&job, 0, sizeof job);
  if (!layout_for (plan, workers, &job.layout))
    return tsr_error_set (err, TSR_ETOOLARGE,
                          "Resizing a %d×%d image at HD-%d needs more working memory than this "
                          "machine can address; choose a smaller HD-N.",
                          image->width, image->height, plan->hd_num);
  mem = malloc (job.layout.total);
  if (mem == NULL)
    return tsr_error_set (err, TSR_ENOMEM,
                          "Resizing a %d×%d image at HD-%d needs %.1f MiB of working memory, "
                          "which could not be had. Close other programs, use fewer threads or "
                          "choose a smaller HD-N.",
                          image->width, image->height, plan->hd_num, mib (job.layout.total));

  job.image = image;
  job.plan = plan;
  job.canvas = canvas;
  job.canvas_stride = (size_t) 3 * plan->padded_w;
  job.need_h = plan->resized_w != plan->width;
  job.need_v = plan->resized_h != plan->height;
  p = mem;
  taps_init (&job.h, image->width, plan->resized_w, p,
             (double *) (void *) (mem + job.layout.taps));
  p += taps_bytes (image->width, plan->resized_w);
  taps_init (&job.v, image->height, plan->resized_h, p,
             (double *) (void *) (mem + job.layout.taps));
  job.scratch = mem + job.layout.taps + job.layout.weights_tmp;

  /* The bars above and below (landscape only); rows in between get their
   * side bars from the workers. */
  memset (canvas, 255, (size_t) plan->pad_y * job.canvas_stride);
  memset (canvas + (size_t) (plan->pad_y + plan->resized_h) * job.canvas_stride, 255,
          (size_t) (plan->padded_h - plan->pad_y - plan->resized_h) * job.canvas_stride);

  run_bands (workers, plan->resized_h, plan->transposed ? canvas_portrait : canvas_landscape, &job);

  free (mem);
  tsr_error_clear (err);
  return TSR_OK;
}

/* ==== ToTensor + Normalize ============================================== */

void
tsr_image_norm_lut (float lut[3][256])
{
  /* torch.as_tensor rounds the Python (double) constants to float32. */
  static const double mean[3] = { 0.48145466, 0.4578275, 0.40821073 };
  static const double std[3] = { 0.26862954, 0.26130258, 0.27577711 };

  for (int c = 0; c < 3; c++)
    {
      float m = (float) mean[c], s = (float) std[c];
      for (int v = 0; v < 256; v++)
        {
          /* ToTensor divides by 255; Normalize subtracts, then divides. */
          float x = (float) v / 255.0f;
          x = x - m;
          lut[c][v] = x / s;
        }
    }
}

typedef struct {
  const TsrImage *canvas;
  float          *chw;
  size_t          plane;
  float           lut[3][256];
} NormJob;

static void
normalize_rows (void *ctx, int y0, int y1, int worker)
{
  NormJob *job = ctx;
  int w = job->canvas->width;
  for (int y = y0; y < y1; y++)
    {
      const unsigned char *px = input_row (job->canvas, y);
      float *r = job->chw + (size_t) y * w;
      float *g = r + job->plane;
      float *b = g + job->plane;
      for (int x = 0; x < w; x++, px += 3)
        {
          r[x] = job->lut[0][px[0]];
          g[x] = job->lut[1][px[1]];
          b[x] = job->lut[2][px[2]];
        }
    }
}

TsrStatus
tsr_image_normalize (const TsrImage *canvas, int n_threads, float *chw, TsrError *err)
{
  NormJob job;
  TsrStatus st;

  if ((st = check_image (canvas, "canvas", err)) != TSR_OK)
    return st;
  if (chw == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No tensor buffer was given (NULL).");
  job.canvas = canvas;
  job.chw = chw;
  job.plane = (size_t) canvas->width * (size_t) canvas->height;
  tsr_image_norm_lut (job.lut);
  run_bands (tsr_image_thread_count (n_threads), canvas->height, normalize_rows, &job);
  tsr_error_clear (err);
  return TSR_OK;
}

/* ==== The global view: torch bicubic, A = −0.75 ========================= *
 *
 * F.interpolate(mode='bicubic', align_corners=False, antialias=False):
 * output o samples the input at (o+0.5)·scale − 0.5 with the four nearest
 * inputs, clamped at the borders — pure point sampling, no low-pass even
 * when shrinking a lot. Along each output row torch interpolates the four
 * input rows along x first, then mixes the four results along y, each as
 * a running float sum; we do the same in the same order. Normalising
 * through the table gives exactly the floats the reference resizes, so
 * there is no need to hold the whole normalised canvas.
 */

#define VIEW TSR_TILE_SIZE

static inline float
cubic_near (float x, float a)   /* |x| ≤ 1 */
{
  return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
}

static inline float
cubic_far (float x, float a)    /* 1 < |x| < 2 */
{
  return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
}

static void
cubic_taps (int in_size, int idx[VIEW][4], float w[VIEW][4])
{
  const float a = -0.75f;
  /* torch's scale is float; its source position keeps double precision
   * (measured against torch 1.13: rounding the position to float first
   * moves weights by up to 2e-5 when the ratio is not whole). Whole
   * ratios — the only ones the HD canvas produces — are exact either way. */
  float scale = (float) in_size / (float) VIEW;

  for (int o = 0; o < VIEW; o++)
    {
      double src = (double) scale * (o + 0.5) - 0.5;
      double fl = floor (src);
      float t = (float) (src - fl);
      float u = 1.0f - t;
      int i0 = (int) fl;

      w[o][0] = cubic_far (t + 1.0f, a);
      w[o][1] = cubic_near (t, a);
      w[o][2] = cubic_near (u, a);
      w[o][3] = cubic_far (u + 1.0f, a);
      for (int j = 0; j < 4; j++)
        {
          int i = i0 - 1 + j;
          idx[o][j] = i < 0 ? 0 : i >= in_size ? in_size - 1 : i;
        }
    }
}

TsrStatus
tsr_image_global_view (const TsrImage *canvas, float *view, TsrError *err)
{
  static const size_t plane = (size_t) VIEW * VIEW;
  int xi[VIEW][4], yi[VIEW][4];
  float xw[VIEW][4], yw[VIEW][4];
  float lut[3][256];
  float across[4][3][VIEW];   /* the four source rows, interpolated along x */
  TsrStatus st;

  if ((st = check_image (canvas, "canvas", err)) != TSR_OK)
    return st;
  if (view == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No view buffer was given (NULL).");

  tsr_image_norm_lut (lut);
  cubic_taps (canvas->width, xi, xw);
  cubic_taps (canvas->height, yi, yw);

  for (int oy = 0; oy < VIEW; oy++)
    {
      for (int i = 0; i < 4; i++)
        {
          const unsigned char *row = input_row (canvas, yi[oy][i]);
          for (int ox = 0; ox < VIEW; ox++)
            {
              const unsigned char *p0 = row + 3 * xi[ox][0], *p1 = row + 3 * xi[ox][1];
              const unsigned char *p2 = row + 3 * xi[ox][2], *p3 = row + 3 * xi[ox][3];
              const float *w = xw[ox];
              for (int c = 0; c < 3; c++)
                {
                  float s = lut[c][p0[c]] * w[0];
                  s += lut[c][p1[c]] * w[1];
                  s += lut[c][p2[c]] * w[2];
                  s += lut[c][p3[c]] * w[3];
                  across[i][c][ox] = s;
                }
            }
        }
      for (int c = 0; c < 3; c++)
        {
          float *out = view + c * plane + (size_t) oy * VIEW;
          const float *w = yw[oy];
          for (int ox = 0; ox < VIEW; ox++)
            {
              float s = across[0][c][ox] * w[0];
              s += across[1][c][ox] * w[1];
              s += across[2][c][ox] * w[2];
              s += across[3][c][ox] * w[3];
              out[ox] = s;
            }
        }
    }
  tsr_error_clear (err);
  return TSR_OK;
}

/* ==== Tiles ============================================================= */

TsrStatus
tsr_image_tile (const TsrImage *canvas, int index, float *view, TsrError *err)
{
  static const size_t plane = (size_t) VIEW * VIEW;
  float lut[3][256];
  int cols, rows, x0, y0;
  TsrStatus st;

  if ((st = check_image (canvas, "canvas", err)) != TSR_OK)
    return st;
  if (canvas->width % VIEW != 0 || canvas->height % VIEW != 0)
    return tsr_error_set (err, TSR_EINVAL,
                          "Tiles are cut from a canvas whose sides are multiples of %d; this one "
                          "is %d×%d. Make it with tsr_image_hd_canvas.",
                          VIEW, canvas->width, canvas->height);
  cols = canvas->width / VIEW;
  rows = canvas->height / VIEW;
  if (index < 0 || index >= rows * cols)
    return tsr_error_set (err, TSR_EINVAL,
                          "Tile %d does not exist: the canvas has %d tiles (%d rows × %d cols), "
                          "numbered from 0.", index, rows * cols, rows, cols);
  if (view == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No view buffer was given (NULL).");

  tsr_image_norm_lut (lut);
  x0 = (index % cols) * VIEW;
  y0 = (index / cols) * VIEW;
  for (int y = 0; y < VIEW; y++)
    {
      const unsigned char *px = input_row (canvas, y0 + y) + (size_t) 3 * x0;
      float *r = view + (size_t) y * VIEW;
      float *g = r + plane;
      float *b = g + plane;
      for (int x = 0; x < VIEW; x++, px += 3)
        {
          r[x] = lut[0][px[0]];
          g[x] = lut[1][px[1]];
          b[x] = lut[2][px[2]];
        }
    }
  tsr_error_clear (err);
  return TSR_OK;
}
