/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-vision — the vision path (engine/tsr-vit.c, engine/tsr-projector.c):
 *
 *   1. the token layout, traced: features that encode (view, patch,
 *      channel) go through the merge and the layout, and every output
 *      value is read back to the view, row, column and quadrant model.md
 *      §6.5 puts there; the count equals the planner's for every grid;
 *   2. against tests/reference/vision_reference.py (a PyTorch reference in
 *      float64): the tiny model's projected embeddings for four images
 *      (HD-1, a 2×2, a 2×3 and a portrait 3×2 grid) within 1e-4 relative
 *      with f32 weights, and the bounds below for converted weights; the
 *      ViT features of one view on their own;
 *   3. the same result whatever the batch and thread count, and the
 *      streamed encoder equal to assembling all views first;
 *   4. progress, abort part-way (between tiles and between layers) with
 *      TSR_ECANCELLED, and the next call on the same handle exact;
 *   5. bad arguments and files the vision path must refuse.
 *
 * Relative error here is max|got − want| / max|want| over the whole array
 * (the converted types also print the RMS ratio ‖got − want‖₂ / ‖want‖₂).
 *
 *   test-vision FIXTURE_DIR [GGUF_FIXTURE_DIR [LLAMA.gguf]]
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tessera-engine.h"
#include "tsr-npy.h"
#include "tsr-projector.h"
#include "tsr-threads.h"
#include "tsr-vit.h"

#define F32_BOUND 1e-4
/* Converted weights (every matrix of the ViT and the projector; the
 * patch embedding stays f32 for q8_0/q4_0, whose blocks do not divide its
 * rows of 588), against the f32 reference. Measured on these fixtures
 * (worst case over the four images; 2 blocks of width 32, projector
 * 128 → 64): f16 5.6e-4, bf16 5.1e-3, q8_0 1.4e-2, q4_0 0.19. Per-value
 * weight error grows from bf16 (8-bit mantissa) to q8_0 (127 steps of the
 * block's largest value: for Gaussian weights about 2.5× bf16's) to q4_0.
 * The bounds leave about 2× room. */
#define F16_BOUND  1.5e-3
#define BF16_BOUND 1.5e-2
#define Q8_0_BOUND 3e-2
#define Q4_0_BOUND 0.4

static int n_checks, n_failures;
static char current[128] = "(setup)";

static void fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
fail (const char *fmt, ...)
{
  va_list ap;
  n_failures++;
  if (n_failures > 60)
    return;
  fprintf (stderr, "FAIL %s: ", current);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

#define CHECK(cond, ...)              \
  do {                                \
    n_checks++;                       \
    if (!(cond))                      \
      fail (__VA_ARGS__);             \
  } while (0)

static char *
path_join (const char *dir, const char *name)
{
  size_t n = strlen (dir) + strlen (name) + 2;
  char *p = malloc (n);
  snprintf (p, n, "%s/%s", dir, name);
  return p;
}

static double
rms_err (const float *got, const float *want, size_t n)
{
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++)
    {
      num += ((double) got[i] - want[i]) * ((double) got[i] - want[i]);
      den += (double) want[i] * want[i];
    }
  return den > 0 ? sqrt (num / den) : sqrt (num);
}

static double
rel_err (const float *got, const float *want, size_t n)
{
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++)
    {
      double d = fabs ((double) got[i] - want[i]);
      if (!(d <= num))           /* NaN counts as infinitely wrong */
        num = isnan (d) ? INFINITY : d;
      if (fabs (want[i]) > den)
        den = fabs (want[i]);
    }
  return den > 0 ? num / den : num;
}

/* ==== 1. Layout ========================================================= */

/* The sequence as model.md §6.5 words it, built independently of
 * tsr_layout_*: global rows with sub_GN, glb_GN, then grid row R =
 * 12i + r walking tiles (i, 0…cols−1). */
static size_t
expected_layout (int rows, int cols, int g, TsrLayoutEntry *e)
{
  size_t n = 0;
  for (int r = 0; r < g; r++)
    {
      for (int c = 0; c < g; c++)
        e[n++] = (TsrLayoutEntry) { TSR_LAYOUT_TOKEN, 0, r, c };
      e[n++] = (TsrLayoutEntry) { TSR_LAYOUT_SUB_GN, -1, -1, -1 };
    }
  e[n++] = (TsrLayoutEntry) { TSR_LAYOUT_GLB_GN, -1, -1, -1 };
  for (int i = 0; i < rows; i++)
    for (int r = 0; r < g; r++)
      {
        for (int j = 0; j < cols; j++)
          for (int c = 0; c < g; c++)
            e[n++] = (TsrLayoutEntry) { TSR_LAYOUT_TOKEN, 1 + i * cols + j, r, c };
        e[n++] = (TsrLayoutEntry) { TSR_LAYOUT_SUB_GN, -1, -1, -1 };
      }
  return n;
}

/* A feature value that names its view, patch and channel exactly in f32. */
static float
trace_value (int view, int patch, int ch)
{
  return (float) ((view * 1000 + patch) * 4 + ch);
}

static void
test_layout (void)
{
  const int g = 12, side = 24, C = 4;
  int grids[][2] = { { 1, 1 }, { 1, 2 }, { 2, 1 }, { 2, 3 }, { 3, 2 }, { 5, 11 }, { 7, 7 },
                     { 1, 55 }, { 55, 1 }, { 8, 6 } };

  snprintf (current, sizeof current, "layout");
  for (size_t k = 0; k < sizeof grids / sizeof grids[0]; k++)
    {
      int rows = grids[k][0], cols = grids[k][1], views = rows * cols + 1;
      size_t n = tsr_layout_n_rows (rows, cols, g);
      size_t want_n = (size_t) (rows * cols + 1) * 144 + 1 + (size_t) (rows + 1) * 12;
      TsrLayoutEntry *got = calloc (n + 1, sizeof *got), *want = calloc (want_n + 1, sizeof *want);
      float **feat = calloc ((size_t) views, sizeof *feat);
      float *seq = malloc (n * 4 * C * sizeof (float));
      float sub[4 * 4], glb[4 * 4];
      int bad = 0;

      snprintf (current, sizeof current, "layout %d×%d", rows, cols);
      CHECK (n == want_n, "%zu rows, the formula gives %zu", n, want_n);
      CHECK (expected_layout (rows, cols, g, want) == want_n, "expected layout has a wrong length");
      tsr_layout_describe (rows, cols, g, got);
      for (size_t i = 0; i < n && !bad; i++)
        if (got[i].kind != want[i].kind || got[i].view != want[i].view || got[i].r != want[i].r ||
            got[i].c != want[i].c)
          {
            fail ("row %zu holds kind %d view %d (%d,%d); model.md puts kind %d view %d (%d,%d) there",
                  i, got[i].kind, got[i].view, got[i].r, got[i].c, want[i].kind, want[i].view,
                  want[i].r, want[i].c);
            bad = 1;
          }
      for (size_t i = 0; i < n; i++)
        if (want[i].kind == TSR_LAYOUT_TOKEN)
          CHECK (tsr_layout_token_row (rows, cols, g, want[i].view, want[i].r, want[i].c) == i,
                 "token_row of view %d (%d,%d) is not %zu", want[i].view, want[i].r, want[i].c, i);
      {
        int n_sub = 0;
        for (size_t i = 0; i < n; i++)
          if (want[i].kind == TSR_LAYOUT_SUB_GN)
            CHECK (tsr_layout_sub_gn_row (rows, cols, g, n_sub++) == i, "sub_GN %d is not row %zu",
                   n_sub - 1, i);
        CHECK (n_sub == g * (rows + 1), "%d sub_GN rows", n_sub);
        CHECK (tsr_layout_glb_gn_row (g) == (size_t) g * (g + 1), "glb_GN row");
      }

      /* Traced: every value of the sequence names where it came from. */
      for (int v = 0; v < views; v++)
        {
          feat[v] = malloc ((size_t) side * side * C * sizeof (float));
          for (int p = 0; p < side * side; p++)
            for (int ch = 0; ch < C; ch++)
              feat[v][p * C + ch] = trace_value (v, p, ch);
        }
      for (int i = 0; i < 4 * C; i++)
        {
          sub[i] = -1.0f;
          glb[i] = -2.0f;
        }
      tsr_projector_assemble (rows, cols, side, C, (const float *const *) feat, C, sub, glb, seq);
      bad = 0;
      for (size_t i = 0; i < n && bad < 3; i++)
        for (int q = 0; q < 4; q++)
          for (int ch = 0; ch < C; ch++)
            {
              float got_v = seq[i * 4 * C + (size_t) q * C + ch], want_v;
              if (want[i].kind == TSR_LAYOUT_TOKEN)
                {
                  /* Quadrant q = TL, TR, BL, BR of the 2×2 block at (2r, 2c). */
                  int pr = 2 * want[i].r + q / 2, pc = 2 * want[i].c + q % 2;
                  want_v = trace_value (want[i].view, pr * side + pc, ch);
                }
              else
                want_v = want[i].kind == TSR_LAYOUT_SUB_GN ? -1.0f : -2.0f;
              if (got_v != want_v)
                {
                  int code = (int) got_v;
                  fail ("row %zu quadrant %d channel %d came from view %d patch %d channel %d; "
                        "want %.0f", i, q, ch, code >= 0 ? code / 4000 : -1,
                        code >= 0 ? code / 4 % 1000 : -1, code >= 0 ? code % 4 : -1, want_v);
                  bad++;
                  break;
                }
            }

      /* The merge on its own, with a row stride wider than the channels. */
      if (k == 0)
        {
          size_t ld = C + 3;
          float *wide = calloc ((size_t) side * side * ld, sizeof (float));
          float *m = malloc ((size_t) g * g * 4 * C * sizeof (float));
          for (int p = 0; p < side * side; p++)
            for (int ch = 0; ch < C; ch++)
              wide[p * ld + ch] = trace_value (1, p, ch);
          tsr_projector_merge (wide, side, C, ld, m);
          for (int r = 0; r < g; r++)
            for (int c = 0; c < g; c++)
              for (int q = 0; q < 4; q++)
                CHECK (m[((r * g + c) * 4 + q) * C + 1] ==
                       trace_value (1, (2 * r + q / 2) * side + 2 * c + q % 2, 1),
                       "merge (%d,%d) quadrant %d", r, c, q);
          free (wide);
          free (m);
        }

      for (int v = 0; v < views; v++)
        free (feat[v]);
      free (feat);
      free (seq);
      free (got);
      free (want);
    }

  /* The planner's count, for the grids real images get. */
  snprintf (current, sizeof current, "layout vs planner");
  for (int hd = 1; hd <= 100; hd += 3)
    for (int w = 100; w <= 4000; w += 650)
      for (int h = 100; h <= 4000; h += 550)
        {
          TsrHdPlan plan;
          TsrError err;
          if (tsr_hd_plan (w, h, hd, &plan, &err) != TSR_OK)
            continue;
          CHECK (tsr_layout_n_rows (plan.rows, plan.cols, 12) == (size_t) plan.tokens,
                 "%d×%d HD-%d: %zu rows, planner %d", w, h, hd,
                 tsr_layout_n_rows (plan.rows, plan.cols, 12), plan.tokens);
        }
}

/* ==== Products ========================================================== */

/* tsr_vision_product against tsr_matmul (tested on its own by
 * test-kernels) for every type, on shapes whose thread shares span
 * several dequantised chunks and end in a short one, with strides wider
 * than the matrices. 31 rows take tsr_matmul's few-rows path in both. */
static void
test_products (void)
{
  static const TsrDType types[] = { TSR_DTYPE_F32, TSR_DTYPE_F16, TSR_DTYPE_BF16, TSR_DTYPE_Q8_0,
                                    TSR_DTYPE_Q4_0 };
  /* 31 and 45 rows of X: W's 1100 rows split, several 508-row chunks on
   * one thread; 1200 rows of X split across 2 or 3 threads sharing
   * 1016- or 1524-row chunks of W. */
  const int64_t n = 1100, k = 4128, ldx = k + 5, ldy = n + 3;
  float *wf = malloc ((size_t) (n * k) * sizeof (float));
  float *scratch;
  uint64_t seed = 1;

  for (int64_t i = 0; i < n * k; i++)
    {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      wf[i] = (float) ((seed >> 40) * (1.0 / 16777216.0)) - 0.5f;
    }
  scratch = malloc (tsr_vision_product_scratch (3) * sizeof (float));
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    for (int mi = 0; mi < 3; mi++)
      for (int threads = mi == 2 ? 2 : 1; threads <= 3; threads++)
        {
          const int m = mi == 0 ? 31 : mi == 1 ? 45 : 1200;
          uint64_t rb;
          TsrError err;
          TsrPool *pool;
          unsigned char *wq;
          float *x = malloc ((size_t) (m * ldx) * sizeof (float));
          float *a = calloc ((size_t) (m * ldy), sizeof (float));
          float *b = calloc ((size_t) (m * ldy), sizeof (float));
          TsrWeights w;

          snprintf (current, sizeof current, "product %s, M %d, %d threads",
                    tsr_dtype_name (types[t]), m, threads);
          tsr_dtype_row_bytes (types[t], (uint64_t) k, &rb, &err);
          wq = malloc ((size_t) (rb * (uint64_t) n));
          for (int64_t r = 0; r < n; r++)
            tsr_quantize_row (types[t], wf + r * k, wq + (size_t) r * rb, (size_t) k, &err);
          for (int64_t i = 0; i < m * ldx; i++)
            x[i] = (float) (i % 97) / 97.0f - 0.5f;
          w = (TsrWeights) { types[t], n, k, (size_t) rb, wq };
          tsr_pool_new (threads, &pool, &err);
          CHECK (tsr_vision_product (pool, tsr_isa_best (), &w, x, m, ldx, a, ldy, scratch, &err) ==
                 TSR_OK, "%s", err.message);
          CHECK (tsr_matmul (pool, tsr_isa_best (), &w, x, m, ldx, b, ldy, &err) == TSR_OK,
                 "%s", err.message);
          {
            double worst = 0;
            for (int i = 0; i < m; i++)
              for (int64_t j = 0; j < n; j++)
                {
                  double d = fabs ((double) a[i * ldy + j] - b[i * ldy + j]);
                  worst = d > worst ? d : worst;
                }
            /* Both are sgemm over the same dequantised rows; only OpenBLAS's
             * blocking may differ. */
            CHECK (worst <= 1e-4, "differs from tsr_matmul by %.3e", worst);
            for (int i = 0; i < m; i++)
              CHECK (a[i * ldy + n] == 0.0f, "wrote past its rows");
          }
          tsr_pool_free (pool);
          free (wq);
          free (x);
          free (a);
          free (b);
        }
  free (scratch);
  free (wf);
}

/* ==== Fixtures ========================================================== */

typedef struct {
  char  name[64];
  int   hd, width, height, rows, cols, tokens;
  unsigned char *rgb;
  TsrNpyF32 want;
} Case;

static unsigned char *
read_ppm (const char *path, int *w, int *h)
{
  FILE *f = fopen (path, "rb");
  unsigned char *p = NULL;
  int maxv;
  if (f == NULL)
    return NULL;
  if (fscanf (f, "P6 %d %d %d", w, h, &maxv) == 3 && maxv == 255 && fgetc (f) == '\n' &&
      *w > 0 && *h > 0 && *w < 10000 && *h < 10000)
    {
      size_t n = (size_t) *w * *h * 3;
      p = malloc (n);
      if (fread (p, 1, n, f) != n)
        {
          free (p);
          p = NULL;
        }
    }
  fclose (f);
  return p;
}

static int
load_cases (const char *dir, Case **out)
{
  char *path = path_join (dir, "cases.json"), *text;
  FILE *f = fopen (path, "rb");
  long len;
  cJSON *root, *it;
  Case *cases;
  int n = 0;

  if (f == NULL)
    {
      fprintf (stderr, "cannot open %s\n", path);
      exit (2);
    }
  fseek (f, 0, SEEK_END);
  len = ftell (f);
  fseek (f, 0, SEEK_SET);
  text = calloc (1, (size_t) len + 1);
  if (fread (text, 1, (size_t) len, f) != (size_t) len)
    exit (2);
  fclose (f);
  free (path);
  root = cJSON_Parse (text);
  free (text);
  cases = calloc ((size_t) cJSON_GetArraySize (root), sizeof *cases);
  cJSON_ArrayForEach (it, root)
    {
      Case *c = &cases[n++];
      char file[96];
      TsrError err;
      snprintf (c->name, sizeof c->name, "%s", cJSON_GetObjectItem (it, "name")->valuestring);
      c->hd = cJSON_GetObjectItem (it, "hd")->valueint;
      c->width = cJSON_GetObjectItem (it, "width")->valueint;
      c->height = cJSON_GetObjectItem (it, "height")->valueint;
      c->rows = cJSON_GetObjectItem (it, "rows")->valueint;
      c->cols = cJSON_GetObjectItem (it, "cols")->valueint;
      c->tokens = cJSON_GetObjectItem (it, "tokens")->valueint;
      snprintf (file, sizeof file, "%s.ppm", c->name);
      path = path_join (dir, file);
      int w = 0, h = 0;
      c->rgb = read_ppm (path, &w, &h);
      if (c->rgb == NULL || w != c->width || h != c->height)
        {
          fprintf (stderr, "cannot read %s as a %d×%d PPM\n", path, c->width, c->height);
          exit (2);
        }
      free (path);
      snprintf (file, sizeof file, "%s-embd.npy", c->name);
      path = path_join (dir, file);
      if (tsr_npy_read_f32 (path, &c->want, &err) != TSR_OK)
        {
          fprintf (stderr, "%s\n", err.message);
          exit (2);
        }
      free (path);
    }
  cJSON_Delete (root);
  *out = cases;
  return n;
}

typedef struct {
  int abort_after_done;    /* abort once progress reported this many views; −1 never */
  int abort_after_polls;   /* abort on this poll; −1 never */
  int polls;
  int last_done, last_total, calls, bad_stage, went_back;
} Watch;

static void
watch_progress (const char *stage, int done, int total, void *user_data)
{
  Watch *w = user_data;
  if (strcmp (stage, "tiles") != 0)
    w->bad_stage = 1;
  if (w->calls > 0 && done < w->last_done)
    w->went_back = 1;
  w->calls++;
  w->last_done = done;
  w->last_total = total;
}

static int
watch_abort (void *user_data)
{
  Watch *w = user_data;
  w->polls++;
  if (w->abort_after_polls >= 0 && w->polls > w->abort_after_polls)
    return 1;
  return w->abort_after_done >= 0 && w->calls > 0 && w->last_done >= w->abort_after_done;
}

static TsrStatus
encode (const TsrVision *v, TsrPool *pool, const Case *c, int batch, Watch *watch, float *out,
        TsrVisionTimings *tm, TsrError *err)
{
  TsrVisionParams p;
  tsr_vision_params_init (&p);
  p.hd_num = c->hd;
  p.batch = batch;
  p.n_threads = 2;
  if (watch != NULL)
    {
      p.progress = watch_progress;
      p.should_abort = watch_abort;
      p.user_data = watch;
    }
  return tsr_vision_encode (v, pool, c->rgb, c->width, c->height, (size_t) 3 * c->width, &p, out,
                            (size_t) c->tokens * tsr_vision_info (v)->n_out, tm, err);
}

/* ==== 2. Against the reference ========================================== */

static void
test_reference (const TsrVision *v, TsrPool *pool, Case *cases, int n_cases, const char *dir)
{
  const TsrVisionInfo *in = tsr_vision_info (v);
  TsrError err;

  snprintf (current, sizeof current, "model info");
  CHECK (in->image_size == 336 && in->patch_size == 14 && in->n_embd == 32 && in->n_layer == 2 &&
         in->n_head == 4 && in->head_dim == 8 && in->n_ff == 64 && in->n_merge == 128 &&
         in->n_out == 64 && in->type == TSR_DTYPE_F32 && fabsf (in->eps - 1e-5f) < 1e-10f,
         "info: %d %d %d %d %d %d %d %d %d type %d eps %g", in->image_size, in->patch_size,
         in->n_embd, in->n_layer, in->n_head, in->head_dim, in->n_ff, in->n_merge, in->n_out,
         (int) in->type, in->eps);

  for (int i = 0; i < n_cases; i++)
    {
      Case *c = &cases[i];
      size_t n = (size_t) c->tokens * in->n_out;
      float *got = malloc (n * sizeof (float));
      TsrVisionTimings tm;
      TsrHdPlan plan;
      double e;

      snprintf (current, sizeof current, "reference %s", c->name);
      tsr_hd_plan (c->width, c->height, c->hd, &plan, &err);
      CHECK (plan.rows == c->rows && plan.cols == c->cols && plan.tokens == c->tokens,
             "planner %d×%d %d tokens; reference %d×%d %d", plan.rows, plan.cols, plan.tokens,
             c->rows, c->cols, c->tokens);
      CHECK (c->want.ndim == 2 && c->want.shape[0] == (size_t) c->tokens &&
             c->want.shape[1] == (size_t) in->n_out, "fixture shape");
      if (encode (v, pool, c, 0, NULL, got, &tm, &err) != TSR_OK)
        fail ("encode: %s", err.message);
      else
        {
          e = rel_err (got, c->want.data, n);
          printf ("  %-14s HD-%d %d×%d, %4d tokens: f32 relative error %.2e\n", c->name, c->hd,
                  c->rows, c->cols, c->tokens, e);
          CHECK (e <= F32_BOUND, "relative error %.3e > %.0e", e, F32_BOUND);
          CHECK (tm.views == c->rows * c->cols + 1 && tm.tokens == c->tokens && tm.threads == 2 &&
                 tm.batch >= 1 && tm.work_bytes > 0 && tm.total_ms >= tm.vit_ms &&
                 tm.vit_gflop > 0 && tm.ms_per_view > 0,
                 "timings: views %d tokens %d threads %d batch %d work %zu", tm.views, tm.tokens,
                 tm.threads, tm.batch, tm.work_bytes);
        }
      free (got);
    }

  /* The ViT alone, on the first case's global view. */
  {
    Case *c = &cases[0];
    char *path = path_join (dir, "global-features.npy");
    TsrNpyF32 want;
    TsrVitWork *work = NULL;
    TsrHdPlan plan;
    TsrImageSizes sizes;
    TsrImage img = { c->width, c->height, (size_t) 3 * c->width, c->rgb }, canvas;
    unsigned char *px;

    snprintf (current, sizeof current, "ViT features");
    if (tsr_npy_read_f32 (path, &want, &err) != TSR_OK)
      fail ("%s", err.message);
    else if (tsr_hd_plan (c->width, c->height, c->hd, &plan, &err) != TSR_OK ||
             tsr_image_sizes (&plan, 1, &sizes, &err) != TSR_OK ||
             tsr_vit_work_new (&v->vit, 1, tsr_pool_size (pool), &work, &err) != TSR_OK)
      fail ("%s", err.message);
    else
      {
        px = malloc (sizes.canvas_bytes);
        tsr_image_hd_canvas (&img, &plan, 1, px, &err);
        canvas = (TsrImage) { plan.padded_w, plan.padded_h, (size_t) 3 * plan.padded_w, px };
        tsr_image_global_view (&canvas, tsr_vit_work_view (work, 0), &err);
        if (tsr_vit_forward (&v->vit, pool, tsr_isa_best (), work, 1, NULL, &err) != TSR_OK)
          fail ("forward: %s", err.message);
        else
          {
            double e = rel_err (tsr_vit_work_features (work, 0), want.data, want.count);
            CHECK (want.count == 576 * 32, "fixture has %zu values", want.count);
            printf ("  ViT features of the global view: relative error %.2e\n", e);
            CHECK (e <= F32_BOUND, "relative error %.3e", e);
          }
        /* The scalar row kernels must agree with the SIMD ones. */
        if (tsr_isa_best () != TSR_ISA_SCALAR &&
            tsr_vit_forward (&v->vit, pool, TSR_ISA_SCALAR, work, 1, NULL, &err) == TSR_OK)
          {
            double e = rel_err (tsr_vit_work_features (work, 0), want.data, want.count);
            printf ("  the same with the scalar kernels: %.2e\n", e);
            CHECK (e <= F32_BOUND, "scalar relative error %.3e", e);
          }
        free (px);
      }
    tsr_vit_work_free (work);
    free (want.data);
    free (path);
  }
}

/* ==== 3. Batches, threads, streaming ==================================== */

static void
test_invariance (const TsrVision *v, Case *c)
{
  size_t n = (size_t) c->tokens * tsr_vision_info (v)->n_out;
  float *a = malloc (n * sizeof (float)), *b = malloc (n * sizeof (float));
  int views = c->rows * c->cols + 1;
  TsrError err;

  for (int threads = 1; threads <= 3; threads++)
    for (int batch = 1; batch <= views; batch += 2)
      {
        TsrPool *pool;
        snprintf (current, sizeof current, "%s, %d threads, batch %d", c->name, threads, batch);
        if (tsr_pool_new (threads, &pool, &err) != TSR_OK)
          {
            fail ("%s", err.message);
            continue;
          }
        if (encode (v, pool, c, batch, NULL, a, NULL, &err) != TSR_OK)
          fail ("%s", err.message);
        else
          {
            double e = rel_err (a, c->want.data, n);
            CHECK (e <= F32_BOUND, "relative error %.3e", e);
          }
        tsr_pool_free (pool);
      }

  /* Streaming views through the MLP batch by batch must equal building
   * the whole sequence first and projecting it in one go. */
  {
    TsrPool *pool;
    TsrVitWork *work = NULL;
    TsrHdPlan plan;
    TsrImageSizes sizes;
    TsrImage img = { c->width, c->height, (size_t) 3 * c->width, c->rgb }, canvas;
    const TsrProjector *pj = &v->proj;
    unsigned char *px;
    float *seq, *tmp, **feat;
    size_t rows;

    snprintf (current, sizeof current, "%s, streamed vs assembled", c->name);
    tsr_pool_new (2, &pool, &err);
    tsr_hd_plan (c->width, c->height, c->hd, &plan, &err);
    tsr_image_sizes (&plan, 1, &sizes, &err);
    rows = tsr_layout_n_rows (plan.rows, plan.cols, 12);
    px = malloc (sizes.canvas_bytes);
    tsr_image_hd_canvas (&img, &plan, 1, px, &err);
    canvas = (TsrImage) { plan.padded_w, plan.padded_h, (size_t) 3 * plan.padded_w, px };
    tsr_vit_work_new (&v->vit, views, 2, &work, &err);
    tsr_image_global_view (&canvas, tsr_vit_work_view (work, 0), &err);
    for (int k = 0; k < plan.tiles; k++)
      tsr_image_tile (&canvas, k, tsr_vit_work_view (work, 1 + k), &err);
    feat = malloc ((size_t) views * sizeof *feat);
    seq = malloc (rows * (size_t) pj->n_in * sizeof (float));
    tmp = malloc (rows * (size_t) pj->n_out * sizeof (float));
    if (tsr_vit_forward (&v->vit, pool, tsr_isa_best (), work, views, NULL, &err) != TSR_OK)
      fail ("%s", err.message);
    else
      {
        for (int i = 0; i < views; i++)
          feat[i] = (float *) tsr_vit_work_features (work, i);
        tsr_projector_assemble (plan.rows, plan.cols, 24, v->vit.n_embd, (const float *const *) feat,
                                (size_t) v->vit.n_embd, pj->sub_gn, pj->glb_gn, seq);
        tsr_projector_mlp (pj, pool, tsr_isa_best (), seq, (int64_t) rows, tmp, b,
                           tsr_vit_work_scratch (work), &err);
        if (encode (v, pool, c, 2, NULL, a, NULL, &err) != TSR_OK)
          fail ("%s", err.message);
        else
          {
            double e = rel_err (a, b, n);
            CHECK (e <= 1e-6, "streamed and assembled differ by %.3e", e);
          }
      }
    free (feat);
    free (seq);
    free (tmp);
    free (px);
    tsr_vit_work_free (work);
    tsr_pool_free (pool);
  }
  free (a);
  free (b);
}

/* ==== 4. Progress and abort ============================================= */

static void
test_abort (const TsrVision *v, TsrPool *pool, Case *c)
{
  size_t n = (size_t) c->tokens * tsr_vision_info (v)->n_out;
  float *full = malloc (n * sizeof (float)), *again = malloc (n * sizeof (float));
  int views = c->rows * c->cols + 1;
  TsrVisionTimings tm;
  TsrError err;
  Watch w;

  snprintf (current, sizeof current, "progress");
  memset (&w, 0, sizeof w);
  w.abort_after_done = -1;
  w.abort_after_polls = -1;
  if (encode (v, pool, c, 2, &w, full, &tm, &err) != TSR_OK)
    fail ("%s", err.message);
  CHECK (!w.bad_stage && !w.went_back && w.last_done == views && w.last_total == views &&
         w.calls == 1 + (views + 1) / 2, "progress: %d calls, last %d/%d", w.calls, w.last_done,
         w.last_total);
  /* Polled before each batch and each of the 2 blocks of each batch. */
  CHECK (w.polls == (views + 1) / 2 * 3, "%d polls for %d batches", w.polls, (views + 1) / 2);

  for (int after = 1; after < views; after += 2)
    {
      snprintf (current, sizeof current, "abort after %d tiles", after);
      memset (&w, 0, sizeof w);
      w.abort_after_done = after;
      w.abort_after_polls = -1;
      TsrStatus st = encode (v, pool, c, 1, &w, again, &tm, &err);
      CHECK (st == TSR_ECANCELLED, "status %d (%s)", (int) st, err.message);
      CHECK (err.status == TSR_ECANCELLED && strlen (err.message) > 0, "no message");
      CHECK (w.last_done == after, "stopped after %d views", w.last_done);
    }
  for (int polls = 0; polls < 6; polls++)
    {
      snprintf (current, sizeof current, "abort on poll %d (between layers)", polls + 1);
      memset (&w, 0, sizeof w);
      w.abort_after_done = -1;
      w.abort_after_polls = polls;
      TsrStatus st = encode (v, pool, c, 3, &w, again, &tm, &err);
      CHECK (st == TSR_ECANCELLED, "status %d", (int) st);
      CHECK (w.polls == polls + 1, "%d polls", w.polls);
    }

  /* The handle is as good as new. */
  snprintf (current, sizeof current, "encode after an abort");
  memset (again, 0, n * sizeof (float));
  if (encode (v, pool, c, 2, NULL, again, &tm, &err) != TSR_OK)
    fail ("%s", err.message);
  CHECK (memcmp (full, again, n * sizeof (float)) == 0, "differs from the encode before the aborts");
  CHECK (rel_err (again, c->want.data, n) <= F32_BOUND, "differs from the reference");
  free (full);
  free (again);
}

/* ==== Converted weights ================================================= */

static void
test_types (const TsrVision *v, TsrPool *pool, Case *cases, int n_cases)
{
  static const struct {
    TsrDType type;
    double   bound;
  } types[] = {
    { TSR_DTYPE_F16, F16_BOUND }, { TSR_DTYPE_BF16, BF16_BOUND }, { TSR_DTYPE_Q8_0, Q8_0_BOUND },
    { TSR_DTYPE_Q4_0, Q4_0_BOUND },
  };
  TsrError err;

  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    {
      TsrVision *cv = NULL;
      double worst = 0, worst_rms = 0;
      snprintf (current, sizeof current, "%s weights", tsr_dtype_name (types[t].type));
      if (tsr_vision_convert (v, types[t].type, &cv, &err) != TSR_OK)
        {
          fail ("convert: %s", err.message);
          continue;
        }
      CHECK (tsr_vision_info (cv)->type == types[t].type && cv->vit.layers[1].down.type == types[t].type &&
             cv->proj.w2.type == types[t].type, "not converted");
      for (int i = 0; i < n_cases; i++)
        {
          size_t n = (size_t) cases[i].tokens * 64;
          float *got = malloc (n * sizeof (float));
          if (encode (cv, pool, &cases[i], 0, NULL, got, NULL, &err) != TSR_OK)
            fail ("%s: %s", cases[i].name, err.message);
          else
            {
              double e = rel_err (got, cases[i].want.data, n);
              double r = rms_err (got, cases[i].want.data, n);
              worst = e > worst ? e : worst;
              worst_rms = r > worst_rms ? r : worst_rms;
            }
          free (got);
        }
      printf ("  %-5s weights: worst relative error %.2e (bound %.1e), RMS ratio %.2e\n",
              tsr_dtype_name (types[t].type), worst, types[t].bound, worst_rms);
      CHECK (worst <= types[t].bound, "relative error %.3e > %.1e", worst, types[t].bound);
      tsr_vision_free (cv);
    }
}

/* Random weights made in memory, as `tessera-cli bench vision` makes them
 * at full size: they must load and encode to finite values. */
static void
test_random (TsrPool *pool, Case *c)
{
  TsrVisionInfo dims = { 0 };
  TsrDType types[] = { TSR_DTYPE_F32, TSR_DTYPE_BF16, TSR_DTYPE_Q8_0 };
  TsrError err;

  dims.image_size = 336;
  dims.patch_size = 14;
  dims.n_embd = 64;
  dims.n_layer = 1;
  dims.n_head = 2;
  dims.n_ff = 96;
  dims.eps = 1e-5f;
  dims.n_out = 32;
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    {
      TsrVision *v = NULL;
      snprintf (current, sizeof current, "random %s weights", tsr_dtype_name (types[t]));
      if (tsr_vision_new_random (&dims, types[t], 42, &v, &err) != TSR_OK)
        {
          fail ("%s", err.message);
          continue;
        }
      const TsrVisionInfo *in = tsr_vision_info (v);
      CHECK (in->type == types[t] && in->head_dim == 32 && in->n_merge == 256 && in->n_out == 32 &&
             in->flops_per_view > 0, "info");
      /* The patch embedding's rows of 588 are no whole q8_0 blocks. */
      CHECK (v->vit.patch_embd.type == (types[t] == TSR_DTYPE_Q8_0 ? TSR_DTYPE_F32 : types[t]),
             "patch embedding is %s", tsr_dtype_name (v->vit.patch_embd.type));
      size_t n = (size_t) c->tokens * 32;
      float *out = malloc (n * sizeof (float));
      if (encode (v, pool, c, 0, NULL, out, NULL, &err) != TSR_OK)
        fail ("%s", err.message);
      else
        {
          size_t bad = 0;
          for (size_t i = 0; i < n; i++)
            bad += !isfinite (out[i]);
          CHECK (bad == 0, "%zu values are not finite", bad);
        }
      free (out);
      tsr_vision_free (v);
    }
  snprintf (current, sizeof current, "random weights, bad geometry");
  dims.patch_size = 16;
  {
    TsrVision *v = (TsrVision *) 1;
    CHECK (tsr_vision_new_random (&dims, TSR_DTYPE_F32, 1, &v, &err) == TSR_EFORMAT && v == NULL,
           "patch 16 accepted");
  }
}

/* ==== 5. Refusals ======================================================= */

static void
test_errors (const TsrVision *v, TsrPool *pool, Case *c, const char *dir, const char *other_dir,
             const char *llama)
{
  size_t n = (size_t) c->tokens * 64;
  float *out = malloc (n * sizeof (float));
  TsrVisionParams p;
  TsrError err;
  TsrStatus st;

  snprintf (current, sizeof current, "bad arguments");
  tsr_vision_params_init (&p);
  p.hd_num = c->hd;
  st = tsr_vision_encode (v, pool, c->rgb, c->width, c->height, (size_t) 3 * c->width, &p, out, n - 1,
                          NULL, &err);
  CHECK (st == TSR_EINVAL, "a short output gives %d", (int) st);
  st = tsr_vision_encode (v, pool, c->rgb, c->width, c->height, (size_t) 3 * c->width, &p, NULL, n,
                          NULL, &err);
  CHECK (st == TSR_EINVAL, "no output gives %d", (int) st);
  p.hd_num = 0;
  st = tsr_vision_encode (v, pool, c->rgb, c->width, c->height, (size_t) 3 * c->width, &p, out, n,
                          NULL, &err);
  CHECK (st == TSR_EINVAL, "HD-0 gives %d", (int) st);
  p.hd_num = c->hd;
  p.batch = -1;
  st = tsr_vision_encode (v, pool, c->rgb, c->width, c->height, (size_t) 3 * c->width, &p, out, n,
                          NULL, &err);
  CHECK (st == TSR_EINVAL, "batch −1 gives %d", (int) st);
  p.batch = 0;
  st = tsr_vision_encode (v, pool, c->rgb, c->width, c->height, 2, &p, out, n, NULL, &err);
  CHECK (st == TSR_EINVAL, "a stride shorter than a row gives %d", (int) st);
  /* No pool and no params: the defaults (HD-25) need their own size. */
  {
    TsrHdPlan plan;
    tsr_hd_plan (c->width, c->height, TSR_HD_NUM_DEFAULT, &plan, &err);
    float *big = malloc ((size_t) plan.tokens * 64 * sizeof (float));
    st = tsr_vision_encode (v, NULL, c->rgb, c->width, c->height, (size_t) 3 * c->width, NULL, big,
                            (size_t) plan.tokens * 64, NULL, &err);
    CHECK (st == TSR_OK, "defaults: %s", err.message);
    free (big);
  }

  /* Files: a tower the 336-pixel tiles cannot feed, a file that is no
   * model, and a plain language model (if there is one: test-gguf fails
   * when ../shared/data is missing, this test just skips it). */
  if (other_dir != NULL)
    {
      static const char *const files[] = { "tiny-4khd-synthetic.gguf", "small.gguf", "(llama)" };
      for (size_t i = 0; i < 3; i++)
        {
          char *path;
          if (i == 2)
            {
              FILE *probe = llama ? fopen (llama, "rb") : NULL;
              if (probe == NULL)
                {
                  printf ("  (no llama model file to refuse: skipped)\n");
                  continue;
                }
              fclose (probe);
              path = strdup (llama);
            }
          else
            path = path_join (other_dir, files[i]);
          TsrGguf *g = NULL;
          TsrVision *bad = (TsrVision *) 1;
          snprintf (current, sizeof current, "refuses %s", files[i]);
          if (tsr_gguf_open (path, &g, &err) != TSR_OK)
            fail ("%s", err.message);
          else
            {
              st = tsr_vision_new (g, &bad, &err);
              CHECK (st == TSR_EFORMAT && bad == NULL && strlen (err.message) > 0,
                     "status %d, handle %p", (int) st, (void *) bad);
              printf ("  %s: %s\n", files[i], err.message);
            }
          tsr_gguf_close (g);
          free (path);
        }
    }

  /* A bias stored as f16: patch the tensor's type in a copy of the file.
   * The data shrinks to half, which the reader accepts. */
  {
    char *src = path_join (dir, "tiny-4khd.gguf");
    const char *dst = "test-vision-f16-bias.gguf";
    const char *name = "v.blk.1.attn_k.bias";
    FILE *f = fopen (src, "rb");
    unsigned char *data;
    long len;
    TsrGguf *g = NULL;
    TsrVision *bad = NULL;

    snprintf (current, sizeof current, "refuses an f16 bias");
    fseek (f, 0, SEEK_END);
    len = ftell (f);
    fseek (f, 0, SEEK_SET);
    data = malloc ((size_t) len);
    if (fread (data, 1, (size_t) len, f) != (size_t) len)
      fail ("cannot read %s", src);
    fclose (f);
    for (long i = 0; i + (long) strlen (name) + 20 < len; i++)
      if (memcmp (data + i, name, strlen (name)) == 0 && data[i + strlen (name)] == 1)
        {
          /* name, n_dims = 1 (u32), ne[0] (u64), type (u32) */
          unsigned char *type = data + i + strlen (name) + 4 + 8;
          type[0] = 1;   /* f16 */
          break;
        }
    f = fopen (dst, "wb");
    fwrite (data, 1, (size_t) len, f);
    fclose (f);
    if (tsr_gguf_open (dst, &g, &err) != TSR_OK)
      fail ("the patched file does not open: %s", err.message);
    else
      {
        st = tsr_vision_new (g, &bad, &err);
        CHECK (st == TSR_EFORMAT && strstr (err.message, name) != NULL, "status %d: %s", (int) st,
               err.message);
        tsr_vision_free (bad);
      }
    tsr_gguf_close (g);
    remove (dst);
    free (data);
    free (src);
  }
  free (out);
}

int
main (int argc, char **argv)
{
  const char *dir, *other_dir;
  Case *cases;
  int n_cases;
  char *path;
  TsrGguf *gguf = NULL;
  TsrVision *vision = NULL;
  TsrPool *pool = NULL;
  TsrError err;

  if (argc < 2 || argc > 4)
    {
      fprintf (stderr, "usage: test-vision FIXTURE_DIR [GGUF_FIXTURE_DIR [LLAMA.gguf]]\n");
      return 2;
    }
  dir = argv[1];
  other_dir = argc > 2 ? argv[2] : NULL;

  test_layout ();
  test_products ();

  n_cases = load_cases (dir, &cases);
  path = path_join (dir, "tiny-4khd.gguf");
  if (tsr_gguf_open (path, &gguf, &err) != TSR_OK || tsr_vision_new (gguf, &vision, &err) != TSR_OK ||
      tsr_pool_new (2, &pool, &err) != TSR_OK)
    {
      fprintf (stderr, "%s\n", err.message);
      return 1;
    }
  free (path);

  test_reference (vision, pool, cases, n_cases, dir);
  test_invariance (vision, &cases[n_cases - 1]);
  test_abort (vision, pool, &cases[n_cases - 1]);
  test_types (vision, pool, cases, n_cases);
  test_random (pool, &cases[0]);
  test_errors (vision, pool, &cases[0], dir, other_dir, argc > 3 ? argv[3] : NULL);

  tsr_pool_free (pool);
  tsr_vision_free (vision);
  tsr_gguf_close (gguf);
  for (int i = 0; i < n_cases; i++)
    {
      free (cases[i].rgb);
      free (cases[i].want.data);
    }
  free (cases);
  printf ("%d checks, %d failures\n", n_checks, n_failures);
  return n_failures ? 1 : 0;
}
