/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-preprocess — the image path (engine/tsr-image.c) against fixtures
 * made by the PyTorch reference (tests/reference/preprocess_reference.py):
 * for every case the input PNG is decoded as the app decodes it
 * (tessera-image-load), and the HD canvas must equal the reference's byte
 * for byte, the normalised tensor and the global view must be within 1e-5.
 * Then the same results with other thread counts and strides, every kind
 * of bad argument, a memory shortage, and the .npy writer.
 *
 *   test-preprocess FIXTURE_DIR    the fixture cases and the error cases
 *   test-preprocess --huge [HD]    a 20000×20000 input (default HD-9): it
 *                                  must work, and cost little beyond itself
 */
#include "config.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cjson/cJSON.h>
#include <glib/gstdio.h>

#include "tessera-engine.h"
#include "tessera-image-load.h"
#include "tsr-image.h"
#include "tsr-npy.h"

#define TOLERANCE 1e-5
#define VIEW_FLOATS ((size_t) 3 * TSR_TILE_SIZE * TSR_TILE_SIZE)

static int n_checks, n_failures;
static char current[96] = "(setup)";

static void fail (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

static void
fail (const char *fmt, ...)
{
  va_list ap;
  n_failures++;
  if (n_failures > 80)
    return;
  fprintf (stderr, "FAIL %s: ", current);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

#define CHECK(cond, ...) \
  do { n_checks++; if (!(cond)) fail (__VA_ARGS__); } while (0)

/* A call that must fail with `want` and say something. */
#define CHECK_ERR(call, want) \
  do { \
    TsrError e_; \
    TsrStatus s_; \
    memset (&e_, 0, sizeof e_); \
    s_ = (call); \
    n_checks++; \
    if (s_ != (want)) \
      fail ("%s returned %s, want %s", #call, tsr_status_name (s_), tsr_status_name (want)); \
    else if (e_.status != (want) || e_.message[0] == '\0') \
      fail ("%s: no error message", #call); \
    else \
      printf ("  %-13s %s\n", tsr_status_name (s_), e_.message); \
  } while (0)

static double
elapsed_s (const struct timespec *t0)
{
  struct timespec t1;
  clock_gettime (CLOCK_MONOTONIC, &t1);
  return (t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static long
max_rss_kib (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* ---- Decoding as the app does ------------------------------------------- */

static guint8 *
load_rgb (const char *path, int *w, int *h)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GdkPixbuf) pixbuf = tessera_image_load (path, NULL, &error);
  guint8 *rgb;
  if (pixbuf == NULL)
    {
      fail ("cannot load %s: %s", path, error->message);
      return NULL;
    }
  rgb = tessera_image_to_rgb8 (pixbuf, NULL, &error);
  if (rgb == NULL)
    {
      fail ("cannot convert %s: %s", path, error->message);
      return NULL;
    }
  *w = gdk_pixbuf_get_width (pixbuf);
  *h = gdk_pixbuf_get_height (pixbuf);
  return rgb;
}

static int
load_npy (const char *dir, const char *name, TsrNpyF32 *arr)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  TsrError err;
  if (tsr_npy_read_f32 (path, arr, &err) != TSR_OK)
    {
      fail ("%s", err.message);
      return 0;
    }
  return 1;
}

/* ---- The fixture cases ----------------------------------------------------- */

typedef struct {
  int start, step;
} Sampling;

static Sampling
sampling_from (const cJSON *root, const char *key)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive (root, key);
  Sampling s = { 0, 1 };
  if (cJSON_IsArray (a) && cJSON_GetArraySize (a) == 2)
    {
      s.start = cJSON_GetArrayItem (a, 0)->valueint;
      s.step = cJSON_GetArrayItem (a, 1)->valueint;
    }
  return s;
}

/* got is [3,h,w]; want is got sampled by s (or whole, for step 1). */
static double
compare_sampled (const float *got, int w, int h, const TsrNpyF32 *want, Sampling s, const char *what)
{
  size_t sh = (size_t) (h - s.start + s.step - 1) / s.step;
  size_t sw = (size_t) (w - s.start + s.step - 1) / s.step;
  double worst = 0.0;
  size_t bad = 0;

  n_checks++;
  if (want->ndim != 3 || want->shape[0] != 3 || want->shape[1] != sh || want->shape[2] != sw)
    {
      fail ("%s: fixture shape [%zu,%zu,%zu], want [3,%zu,%zu]", what,
            want->shape[0], want->shape[1], want->shape[2], sh, sw);
      return INFINITY;
    }
  for (size_t c = 0; c < 3; c++)
    for (size_t y = 0; y < sh; y++)
      for (size_t x = 0; x < sw; x++)
        {
          float g = got[(c * h + s.start + y * s.step) * (size_t) w + s.start + x * s.step];
          float r = want->data[(c * sh + y) * sw + x];
          double d = fabs ((double) g - (double) r);
          if (!(d <= TOLERANCE))
            {
              if (bad++ == 0)
                fail ("%s: channel %zu row %zu col %zu is %.9g, reference %.9g", what, c,
                      s.start + y * s.step, s.start + x * s.step, g, r);
            }
          if (d > worst || isnan (d))
            worst = d;
        }
  if (bad > 1)
    fail ("%s: %zu values beyond %g (worst %g)", what, bad, TOLERANCE, worst);
  return worst;
}

typedef struct {
  int    cases, canvases_exact;
  double worst_hd, worst_global;
} Summary;

static void
check_case (const char *dir, const cJSON *root, const cJSON *c, const float ref_lut[3][256],
            Summary *sum)
{
  const char *name = cJSON_GetObjectItemCaseSensitive (c, "name")->valuestring;
  int hd_num = cJSON_GetObjectItemCaseSensitive (c, "hd_num")->valueint;
  const cJSON *full;
  g_autofree char *in_path = g_build_filename (dir, cJSON_GetObjectItemCaseSensitive (c, "input")->valuestring, NULL);
  g_autofree char *canvas_path = g_build_filename (dir, cJSON_GetObjectItemCaseSensitive (c, "canvas")->valuestring, NULL);
  g_autofree guint8 *rgb = NULL, *want_canvas = NULL, *canvas_px = NULL, *other = NULL, *strided = NULL;
  g_autofree float *tensor = NULL, *view = NULL;
  int w, h, cw, ch;
  TsrImage image, canvas;
  TsrImageSizes sizes;
  TsrHdPlan plan;
  TsrError err;
  TsrNpyF32 arr;
  double d;
  size_t mismatches = 0;

  g_snprintf (current, sizeof current, "%s (HD-%d)", name, hd_num);
  sum->cases++;
  if ((rgb = load_rgb (in_path, &w, &h)) == NULL || (want_canvas = load_rgb (canvas_path, &cw, &ch)) == NULL)
    return;
  CHECK (w == cJSON_GetObjectItemCaseSensitive (c, "width")->valueint &&
         h == cJSON_GetObjectItemCaseSensitive (c, "height")->valueint,
         "decoded as %d×%d", w, h);

  image = (TsrImage) { w, h, (size_t) 3 * w, rgb };
  if (tsr_hd_plan (w, h, hd_num, &plan, &err) != TSR_OK ||
      tsr_image_sizes (&plan, 2, &sizes, &err) != TSR_OK)
    {
      fail ("%s", err.message);
      return;
    }
  CHECK (plan.padded_w == cw && plan.padded_h == ch, "plan pads to %d×%d, reference canvas is %d×%d",
         plan.padded_w, plan.padded_h, cw, ch);
  if (plan.padded_w != cw || plan.padded_h != ch)
    return;

  /* The canvas, byte for byte. */
  canvas_px = g_malloc (sizes.canvas_bytes);
  CHECK (tsr_image_hd_canvas (&image, &plan, 1, canvas_px, &err) == TSR_OK, "canvas: %s", err.message);
  for (size_t i = 0; i < sizes.canvas_bytes; i++)
    mismatches += canvas_px[i] != want_canvas[i];
  CHECK (mismatches == 0, "%zu of %zu canvas bytes differ from the reference", mismatches, sizes.canvas_bytes);
  if (mismatches == 0)
    sum->canvases_exact++;

  /* Threads and strides change nothing. */
  other = g_malloc (sizes.canvas_bytes);
  for (int t = 2; t <= 7; t += 5)
    {
      memset (other, 0x5a, sizes.canvas_bytes);
      CHECK (tsr_image_hd_canvas (&image, &plan, t, other, &err) == TSR_OK, "canvas: %s", err.message);
      CHECK (memcmp (other, canvas_px, sizes.canvas_bytes) == 0, "%d threads give another canvas", t);
    }
  {
    size_t stride = (size_t) 3 * w + 5;
    TsrImage padded_rows;
    strided = g_malloc (stride * h);
    memset (strided, 0xa5, stride * h);
    for (int y = 0; y < h; y++)
      memcpy (strided + y * stride, rgb + (size_t) y * 3 * w, (size_t) 3 * w);
    padded_rows = (TsrImage) { w, h, stride, strided };
    memset (other, 0x5a, sizes.canvas_bytes);
    CHECK (tsr_image_hd_canvas (&padded_rows, &plan, 3, other, &err) == TSR_OK, "canvas: %s", err.message);
    CHECK (memcmp (other, canvas_px, sizes.canvas_bytes) == 0, "a stride of 3·w+5 gives another canvas");
  }

  /* The normalised tensor: the reference's samples, and the table exactly. */
  canvas = (TsrImage) { cw, ch, (size_t) 3 * cw, want_canvas };
  tensor = g_malloc (sizes.tensor_bytes);
  CHECK (tsr_image_normalize (&canvas, 2, tensor, &err) == TSR_OK, "normalise: %s", err.message);
  if (load_npy (dir, cJSON_GetObjectItemCaseSensitive (c, "hd_sub")->valuestring, &arr))
    {
      d = compare_sampled (tensor, cw, ch, &arr, sampling_from (root, "hd_sub"), "hd tensor (sampled)");
      sum->worst_hd = fmax (sum->worst_hd, d);
      free (arr.data);
    }
  if ((full = cJSON_GetObjectItemCaseSensitive (c, "hd_full")) != NULL && load_npy (dir, full->valuestring, &arr))
    {
      d = compare_sampled (tensor, cw, ch, &arr, (Sampling) { 0, 1 }, "hd tensor (whole)");
      sum->worst_hd = fmax (sum->worst_hd, d);
      free (arr.data);
    }
  {
    size_t plane = (size_t) cw * ch, bad = 0;
    for (size_t i = 0; i < plane; i++)
      for (int k = 0; k < 3; k++)
        bad += memcmp (&tensor[k * plane + i], &ref_lut[k][want_canvas[3 * i + k]], sizeof (float)) != 0;
    CHECK (bad == 0, "%zu tensor values differ from the reference's table applied to the canvas", bad);
  }

  /* The global view. */
  view = g_malloc (VIEW_FLOATS * sizeof (float));
  CHECK (tsr_image_global_view (&canvas, view, &err) == TSR_OK, "global view: %s", err.message);
  if (load_npy (dir, cJSON_GetObjectItemCaseSensitive (c, "global_sub")->valuestring, &arr))
    {
      d = compare_sampled (view, TSR_TILE_SIZE, TSR_TILE_SIZE, &arr, sampling_from (root, "global_sub"),
                           "global view (sampled)");
      sum->worst_global = fmax (sum->worst_global, d);
      free (arr.data);
    }
  if ((full = cJSON_GetObjectItemCaseSensitive (c, "global_full")) != NULL && load_npy (dir, full->valuestring, &arr))
    {
      d = compare_sampled (view, TSR_TILE_SIZE, TSR_TILE_SIZE, &arr, (Sampling) { 0, 1 }, "global view (whole)");
      sum->worst_global = fmax (sum->worst_global, d);
      free (arr.data);
    }

  /* Tiles: row-major squares of the normalised tensor, exactly. */
  for (int k = 0; k < plan.tiles; k++)
    {
      TsrRect r = tsr_hd_tile_canvas_rect (&plan, k);
      size_t bad = 0;
      CHECK (tsr_image_tile (&canvas, k, view, &err) == TSR_OK, "tile %d: %s", k, err.message);
      CHECK (r.x == (k % plan.cols) * TSR_TILE_SIZE && r.y == (k / plan.cols) * TSR_TILE_SIZE,
             "tile %d is not row-major", k);
      for (int ch3 = 0; ch3 < 3; ch3++)
        for (int y = 0; y < TSR_TILE_SIZE; y++)
          bad += memcmp (view + ((size_t) ch3 * TSR_TILE_SIZE + y) * TSR_TILE_SIZE,
                         tensor + ((size_t) ch3 * ch + r.y + y) * cw + r.x,
                         TSR_TILE_SIZE * sizeof (float)) != 0;
      CHECK (bad == 0, "tile %d differs from its square of the tensor in %zu rows", k, bad);
    }
  printf ("  %-14s %4d×%-4d HD-%-2d → %4d×%-4d  canvas %s\n", name, w, h, hd_num, cw, ch,
          mismatches == 0 ? "bit-exact" : "DIFFERS");
}

static void
check_fixtures (const char *dir)
{
  g_autofree char *manifest = g_build_filename (dir, "cases.json", NULL);
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  cJSON *root;
  const cJSON *c;
  float lut[3][256];
  TsrNpyF32 ref;
  Summary sum = { 0, 0, 0.0, 0.0 };

  if (!g_file_get_contents (manifest, &text, NULL, &error))
    {
      fail ("%s", error->message);
      return;
    }
  root = cJSON_Parse (text);
  if (!cJSON_IsArray (cJSON_GetObjectItemCaseSensitive (root, "cases")))
    {
      fail ("%s has no \"cases\"", manifest);
      cJSON_Delete (root);
      return;
    }

  /* The table against torchvision's ToTensor + Normalize of every byte. */
  g_strlcpy (current, "normalisation table", sizeof current);
  tsr_image_norm_lut (lut);
  if (load_npy (dir, cJSON_GetObjectItemCaseSensitive (root, "norm_lut")->valuestring, &ref))
    {
      CHECK (ref.count == 768, "table has %zu values", ref.count);
      if (ref.count == 768)
        CHECK (memcmp (ref.data, lut, sizeof lut) == 0, "the table differs from torchvision's");
      if (ref.count == 768)
        memcpy (lut, ref.data, sizeof lut);
      free (ref.data);
    }

  cJSON_ArrayForEach (c, cJSON_GetObjectItemCaseSensitive (root, "cases"))
    check_case (dir, root, c, (const float (*)[256]) lut, &sum);
  cJSON_Delete (root);

  printf ("fixtures: %d cases, %d canvases bit-exact; worst |Δ| hd %.3g, global %.3g (tolerance %g)\n",
          sum.cases, sum.canvases_exact, sum.worst_hd, sum.worst_global, TOLERANCE);
  g_strlcpy (current, "fixtures", sizeof current);
  CHECK (sum.cases >= 10, "only %d fixture cases", sum.cases);
}

/* ---- Bad input ---------------------------------------------------------- */

static void
check_errors (void)
{
  static guint8 px[3 * 8 * 6];
  guint8 *canvas_px = g_malloc ((size_t) 3 * 336 * 336);
  float *view = g_malloc (VIEW_FLOATS * sizeof (float));
  TsrImage good = { 8, 6, 24, px }, bad;
  TsrImageSizes sizes;
  TsrHdPlan plan, other, forged;

  g_strlcpy (current, "errors", sizeof current);
  tsr_hd_plan (8, 6, 1, &plan, NULL);
  tsr_hd_plan (6, 8, 1, &other, NULL);

  CHECK (tsr_image_hd_canvas (&good, &plan, 1, canvas_px, NULL) == TSR_OK, "a good 8×6 image");
  CHECK_ERR (tsr_image_hd_canvas (NULL, &plan, 1, canvas_px, &e_), TSR_EINVAL);
  bad = good; bad.width = 0;
  CHECK_ERR (tsr_image_hd_canvas (&bad, &plan, 1, canvas_px, &e_), TSR_EINVAL);
  bad = good; bad.height = -3;
  CHECK_ERR (tsr_image_hd_canvas (&bad, &plan, 1, canvas_px, &e_), TSR_EINVAL);
  bad = good; bad.width = 70000;
  CHECK_ERR (tsr_image_hd_canvas (&bad, &plan, 1, canvas_px, &e_), TSR_ETOOLARGE);
  bad = good; bad.height = TSR_IMAGE_SIDE_MAX + 1;
  CHECK_ERR (tsr_image_normalize (&bad, 1, view, &e_), TSR_ETOOLARGE);
  bad = good; bad.rgb = NULL;
  CHECK_ERR (tsr_image_hd_canvas (&bad, &plan, 1, canvas_px, &e_), TSR_EINVAL);
  bad = good; bad.stride = 23;
  CHECK_ERR (tsr_image_hd_canvas (&bad, &plan, 1, canvas_px, &e_), TSR_EINVAL);
  bad = good; bad.stride = SIZE_MAX / 2;
  CHECK_ERR (tsr_image_hd_canvas (&bad, &plan, 1, canvas_px, &e_), TSR_ETOOLARGE);
  CHECK_ERR (tsr_image_hd_canvas (&good, NULL, 1, canvas_px, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_image_hd_canvas (&good, &other, 1, canvas_px, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_image_hd_canvas (&good, &plan, 1, NULL, &e_), TSR_EINVAL);
  forged = plan; forged.padded_w = 60000;
  CHECK_ERR (tsr_image_hd_canvas (&good, &forged, 1, canvas_px, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_image_sizes (&forged, 1, &sizes, &e_), TSR_EINVAL);
  forged = plan; forged.hd_num = 0;
  CHECK_ERR (tsr_image_sizes (&forged, 1, &sizes, &e_), TSR_EINVAL);
  forged = plan; forged.resized_h += 1;
  CHECK_ERR (tsr_image_hd_canvas (&good, &forged, 1, canvas_px, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_image_sizes (NULL, 1, &sizes, &e_), TSR_EINVAL);

  bad = (TsrImage) { 300, 336, 900, canvas_px };
  CHECK_ERR (tsr_image_tile (&bad, 0, view, &e_), TSR_EINVAL);
  bad = (TsrImage) { 336, 336, 1008, canvas_px };
  CHECK_ERR (tsr_image_tile (&bad, 1, view, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_image_tile (&bad, -1, view, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_image_tile (&bad, 0, NULL, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_image_global_view (&bad, NULL, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_image_global_view (NULL, view, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_image_normalize (&bad, 1, NULL, &e_), TSR_EINVAL);

  /* A NULL TsrError is allowed everywhere. */
  CHECK (tsr_image_hd_canvas (NULL, &plan, 1, canvas_px, NULL) == TSR_EINVAL, "NULL err");

  /* Any canvas size works for the global view; a 1×1 canvas is constant. */
  {
    static const guint8 one[3] = { 255, 0, 128 };
    TsrImage dot = { 1, 1, 3, one };
    float lut[3][256];
    size_t bad_n = 0;
    tsr_image_norm_lut (lut);
    CHECK (tsr_image_global_view (&dot, view, NULL) == TSR_OK, "1×1 global view");
    for (size_t i = 0; i < VIEW_FLOATS; i++)
      bad_n += fabsf (view[i] - lut[i / (336 * 336)][one[i / (336 * 336)]]) > 1e-5f;
    CHECK (bad_n == 0, "1×1 canvas: %zu values off", bad_n);
  }
  g_free (canvas_px);
  g_free (view);
}

/* A plan whose working memory cannot be had must fail cleanly. The child
 * lowers its address-space limit just above what it already uses. */
static void
check_out_of_memory (void)
{
  pid_t pid;
  int status = 0;

  g_strlcpy (current, "out of memory", sizeof current);
#if defined(__SANITIZE_ADDRESS__)
  printf ("out of memory: skipped under AddressSanitizer (it reserves the address space itself)\n");
  return;
#endif
  fflush (NULL);
  pid = fork ();
  if (pid == 0)
    {
      /* 30000×300 at HD-100 resizes to 33600 columns: megabytes of weights and rows. */
      int w = 30000, h = 300;
      guint8 *px = calloc ((size_t) 3 * w, h);
      guint8 *canvas_px;
      TsrImage im = { w, h, (size_t) 3 * w, px };
      TsrHdPlan plan;
      TsrImageSizes sizes;
      TsrError err;
      struct rlimit lim;
      long pages = 0;
      FILE *f;

      if (px == NULL || tsr_hd_plan (w, h, 100, &plan, NULL) != TSR_OK ||
          tsr_image_sizes (&plan, 1, &sizes, NULL) != TSR_OK ||
          (canvas_px = malloc (sizes.canvas_bytes)) == NULL)
        _exit (3);
      if (sizes.scratch_bytes < (1 << 20))
        _exit (4);
      f = fopen ("/proc/self/statm", "r");
      if (f == NULL || fscanf (f, "%ld", &pages) != 1)
        _exit (5);
      fclose (f);
#ifdef __GLIBC__
      /* Memory freed earlier may still sit in malloc's heap, where the
       * limit would not stop it being handed out again. */
      malloc_trim (0);
#endif
      lim.rlim_cur = lim.rlim_max = (rlim_t) pages * sysconf (_SC_PAGESIZE) + (256 << 10);
      if (setrlimit (RLIMIT_AS, &lim) != 0)
        _exit (6);
      if (tsr_image_hd_canvas (&im, &plan, 1, canvas_px, &err) != TSR_ENOMEM)
        {
          fprintf (stderr, "out of memory: got '%s' (%s) with %.1f MiB of working memory\n",
                   tsr_status_name (err.status), err.message, sizes.scratch_bytes / 1048576.0);
          _exit (1);
        }
      fprintf (stdout, "out of memory: %s\n", err.message);
      fflush (stdout);
      _exit (strstr (err.message, "MiB") != NULL ? 0 : 2);
    }
  CHECK (pid > 0 && waitpid (pid, &status, 0) == pid && WIFEXITED (status) && WEXITSTATUS (status) == 0,
         "a canvas without memory did not fail with TSR_ENOMEM and a message (child status %d)",
         WIFEXITED (status) ? WEXITSTATUS (status) : -1);
}

static void
check_npy (void)
{
  g_autofree char *dir = g_dir_make_tmp ("tsr-npy-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "a.npy", NULL);
  g_autofree char *nowhere = g_build_filename (dir, "missing", "a.npy", NULL);
  float data[2 * 3 * 5];
  size_t shape[3] = { 2, 3, 5 }, one[1] = { 30 };
  TsrNpyF32 arr;
  g_autofree char *bytes = NULL;
  gsize len = 0;

  g_strlcpy (current, "npy", sizeof current);
  for (int i = 0; i < 30; i++)
    data[i] = (float) i * 0.25f - 3.0f;
  CHECK (tsr_npy_write_f32 (path, data, 3, shape, NULL) == TSR_OK, "write");
  CHECK (g_file_get_contents (path, &bytes, &len, NULL) && len == 128 + sizeof data &&
         memcmp (bytes, "\x93NUMPY\x01\x00", 8) == 0 && bytes[127] == '\n' &&
         strstr (bytes + 10, "'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 5), }") != NULL,
         "header of %zu bytes: %.60s", (size_t) len, bytes != NULL ? bytes + 10 : "");
  CHECK (tsr_npy_read_f32 (path, &arr, NULL) == TSR_OK && arr.ndim == 3 && arr.count == 30 &&
         memcmp (arr.data, data, sizeof data) == 0, "read back");
  free (arr.data);
  CHECK (tsr_npy_write_f32 (path, data, 1, one, NULL) == TSR_OK &&
         tsr_npy_read_f32 (path, &arr, NULL) == TSR_OK && arr.ndim == 1 && arr.shape[0] == 30,
         "1-D round trip");
  free (arr.data);
  CHECK_ERR (tsr_npy_write_f32 (nowhere, data, 3, shape, &e_), TSR_EIO);
  CHECK_ERR (tsr_npy_write_f32 (path, data, 0, shape, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_npy_write_f32 (path, NULL, 3, shape, &e_), TSR_EINVAL);
  CHECK_ERR (tsr_npy_read_f32 (nowhere, &arr, &e_), TSR_EIO);
  g_file_set_contents (path, "\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'", 26, NULL);
  CHECK_ERR (tsr_npy_read_f32 (path, &arr, &e_), TSR_EFORMAT);
  g_remove (path);
  g_rmdir (dir);
}

/* ---- The huge input ------------------------------------------------------- */

static void
check_huge (int hd_num)
{
  const int side = 20000;
  size_t bytes = (size_t) side * side * 3;
  guint8 *px = malloc (bytes), *canvas_px;
  TsrImage im = { side, side, (size_t) 3 * side, px };
  TsrHdPlan plan;
  TsrImageSizes sizes;
  TsrError err;
  struct timespec t0;
  long before, after;
  size_t white = 0;

  g_snprintf (current, sizeof current, "%d×%d at HD-%d", side, side, hd_num);
  if (px == NULL)
    {
      fail ("cannot allocate the %zu-byte input", bytes);
      return;
    }
  for (int y = 0; y < side; y++)
    {
      guint8 *row = px + (size_t) y * im.stride;
      for (int x = 0; x < side; x++)
        {
          row[3 * x + 0] = (guint8) (x ^ y);
          row[3 * x + 1] = (guint8) (x + 3 * y);
          row[3 * x + 2] = (guint8) ((x * y) >> 5);
        }
    }
  CHECK (tsr_hd_plan (side, side, hd_num, &plan, &err) == TSR_OK &&
         tsr_image_sizes (&plan, 0, &sizes, &err) == TSR_OK, "%s", err.message);
  canvas_px = malloc (sizes.canvas_bytes);
  memset (canvas_px, 0, sizes.canvas_bytes);
  before = max_rss_kib ();

  clock_gettime (CLOCK_MONOTONIC, &t0);
  CHECK (tsr_image_hd_canvas (&im, &plan, 0, canvas_px, &err) == TSR_OK, "%s", err.message);
  after = max_rss_kib ();
  for (size_t i = 0; i < sizes.canvas_bytes; i++)
    white += canvas_px[i] == 255;
  printf ("%s: canvas %d×%d in %.2f s; peak memory beyond the input and canvas %.1f MiB "
          "(input %.0f MiB; engine working memory %.2f MiB)\n",
          current, plan.padded_w, plan.padded_h, elapsed_s (&t0), (after - before) / 1024.0,
          bytes / 1048576.0, sizes.scratch_bytes / 1048576.0);
  CHECK ((double) (after - before) * 1024.0 < 0.05 * bytes,
         "the resize added %.1f MiB, more than 5%% of the input", (after - before) / 1024.0);
  CHECK (white < sizes.canvas_bytes / 2, "the canvas is mostly white");
  free (canvas_px);
  free (px);
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  if (argc >= 2 && strcmp (argv[1], "--huge") == 0)
    check_huge (argc >= 3 ? atoi (argv[2]) : 9);
  else if (argc == 2)
    {
      check_out_of_memory ();
      check_fixtures (argv[1]);
      check_errors ();
      check_npy ();
    }
  else
    {
      fprintf (stderr, "usage: test-preprocess FIXTURE_DIR | --huge [HD]\n");
      return 2;
    }
  printf ("test-preprocess: %d checks, %d failed\n", n_checks, n_failures);
  return n_failures == 0 ? 0 : 1;
}
