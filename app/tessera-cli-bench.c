/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli bench MODE … — timings that print figures, never pass/fail.
 * Each mode is a function taking (argc, argv) with argv[0] = the mode's
 * name; add one with a line in `modes`.
 *
 * bench preprocess [--hd N] [--repeat K] [--threads N] [IMAGE | WxH]
 *   times the image path stage by stage; a size (default 3840x1600, the
 *   paper's "4K HD") is filled with noise.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tessera-cli.h"
#include "tessera-engine.h"
#include "tessera-image-load.h"

/* ---- bench preprocess ---------------------------------------------------- */

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static gboolean
parse_size (const char *text, int *w, int *h)
{
  g_auto(GStrv) parts = g_strsplit (text, strstr (text, "×") != NULL ? "×" : "x", 2);
  return g_strv_length (parts) == 2 &&
         cli_parse_int (parts[0], 1, G_MAXINT, w) &&
         cli_parse_int (parts[1], 1, G_MAXINT, h);
}

/* Noise defeats any shortcut a resampler might take on flat colour. */
static guint8 *
noise_pixels (int w, int h)
{
  gsize n = (gsize) w * h * 3;
  guint8 *p = g_try_malloc (n);
  guint64 s = 0x9E3779B97F4A7C15u;
  if (p == NULL)
    return NULL;
  for (gsize i = 0; i < n; i++)
    {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      p[i] = (guint8) (s >> 24);
    }
  return p;
}

enum { ST_CANVAS, ST_NORMALISE, ST_GLOBAL, ST_TILES, ST_TOTAL, N_STAGES };

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static int
bench_preprocess (int argc, char **argv)
{
  static const char *names[N_STAGES] = { "canvas resize", "normalise", "global view", "tiles", "total" };
  const char *target = NULL;
  int hd = 55, repeat = 5, threads = 0, w = 0, h = 0;
  gboolean synthetic = FALSE;
  g_autofree guint8 *rgb = NULL;
  g_autofree guint8 *canvas_px = NULL;
  g_autofree float *tensor = NULL;
  g_autofree float *view = NULL;
  g_autofree double *times = NULL;
  TsrImage image, canvas;
  TsrImageSizes sizes;
  TsrHdPlan plan;
  TsrError err;
  char thread_text[32] = "one per core";

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--hd") == 0 || strcmp (a, "--repeat") == 0 || strcmp (a, "--threads") == 0)
        {
          if (i + 1 >= argc)
            return cli_fail (CLI_EXIT_USAGE, "%s needs a value", a);
          const char *v = argv[++i];
          if (a[2] == 'h' && !cli_parse_int (v, TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, &hd))
            return cli_fail (CLI_EXIT_USAGE, "--hd takes a whole number from %d to %d, not '%s'",
                             TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, v);
          if (a[2] == 'r' && !cli_parse_int (v, 1, 10000, &repeat))
            return cli_fail (CLI_EXIT_USAGE, "--repeat takes a whole number from 1 to 10000, not '%s'", v);
          if (a[2] == 't' && !cli_parse_int (v, 1, 1024, &threads))
            return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
        }
      else if (a[0] == '-' && a[1] != '\0')
        return cli_fail (CLI_EXIT_USAGE, "bench preprocess: unknown option '%s'", a);
      else if (target == NULL)
        target = a;
      else
        return cli_fail (CLI_EXIT_USAGE, "bench preprocess takes one IMAGE or WxH, got also '%s'", a);
    }
  if (target == NULL)
    target = "3840x1600";

  if (!g_file_test (target, G_FILE_TEST_EXISTS) && parse_size (target, &w, &h))
    {
      if (w > TSR_IMAGE_SIDE_MAX || h > TSR_IMAGE_SIDE_MAX)
        return cli_fail (CLI_EXIT_RUNTIME, "%d×%d: sides above %d are not supported",
                         w, h, TSR_IMAGE_SIDE_MAX);
      rgb = noise_pixels (w, h);
      if (rgb == NULL)
        return cli_fail (CLI_EXIT_RUNTIME, "no memory for a %d×%d image", w, h);
      synthetic = TRUE;
    }
  else
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GdkPixbuf) pixbuf = tessera_image_load (target, NULL, &error);
      if (pixbuf == NULL || (rgb = tessera_image_to_rgb8 (pixbuf, NULL, &error)) == NULL)
        return cli_fail (CLI_EXIT_RUNTIME, "%s", error->message);
      w = gdk_pixbuf_get_width (pixbuf);
      h = gdk_pixbuf_get_height (pixbuf);
    }
  image.width = w;
  image.height = h;
  image.stride = (size_t) 3 * w;
  image.rgb = rgb;

  if (tsr_hd_plan (w, h, hd, &plan, &err) != TSR_OK ||
      tsr_image_sizes (&plan, threads, &sizes, &err) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
  canvas_px = g_try_malloc (sizes.canvas_bytes);
  tensor = g_try_malloc (sizes.tensor_bytes);
  view = g_try_malloc (sizes.view_bytes);
  times = g_new0 (double, (gsize) N_STAGES * repeat);
  if (canvas_px == NULL || tensor == NULL || view == NULL)
    return cli_fail (CLI_EXIT_RUNTIME, "no memory for the %d×%d canvas and its tensor",
                     plan.padded_w, plan.padded_h);
  canvas.width = plan.padded_w;
  canvas.height = plan.padded_h;
  canvas.stride = (size_t) 3 * plan.padded_w;
  canvas.rgb = canvas_px;

  printf ("image        %d × %d%s, HD-%d → resized %d × %d, canvas %d × %d, %d tiles + global\n",
          w, h, synthetic ? " (noise)" : "", hd, plan.resized_w, plan.resized_h,
          plan.padded_w, plan.padded_h, plan.tiles);
  if (threads > 0)
    g_snprintf (thread_text, sizeof thread_text, "%d", threads);
  printf ("threads      %s, %d repeats; working memory %.2f MiB, canvas %.1f MiB, tensor %.1f MiB\n",
          thread_text, repeat,
          sizes.scratch_bytes / 1048576.0, sizes.canvas_bytes / 1048576.0,
          sizes.tensor_bytes / 1048576.0);

  for (int r = 0; r < repeat; r++)
    {
      double *t = times + (gsize) r * N_STAGES;
      double t0 = now_ms (), t1, t2, t3, t4;
      if (tsr_image_hd_canvas (&image, &plan, threads, canvas_px, &err) != TSR_OK)
        return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      t1 = now_ms ();
      if (tsr_image_normalize (&canvas, threads, tensor, &err) != TSR_OK)
        return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      t2 = now_ms ();
      if (tsr_image_global_view (&canvas, view, &err) != TSR_OK)
        return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      t3 = now_ms ();
      for (int k = 0; k < plan.tiles; k++)
        if (tsr_image_tile (&canvas, k, view, &err) != TSR_OK)
          return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      t4 = now_ms ();
      t[ST_CANVAS] = t1 - t0;
      t[ST_NORMALISE] = t2 - t1;
      t[ST_GLOBAL] = t3 - t2;
      t[ST_TILES] = t4 - t3;
      t[ST_TOTAL] = t4 - t0;
    }

  printf ("%-13s %9s %9s %9s\n", "stage", "best ms", "median ms", "worst ms");
  for (int s = 0; s < N_STAGES; s++)
    {
      g_autofree double *col = g_new (double, repeat);
      for (int r = 0; r < repeat; r++)
        col[r] = times[(gsize) r * N_STAGES + s];
      qsort (col, repeat, sizeof *col, compare_double);
      printf ("%-13s %9.2f %9.2f %9.2f\n", names[s], col[0], col[repeat / 2], col[repeat - 1]);
    }
  return CLI_EXIT_OK;
}

/* ---- The dispatcher --------------------------------------------------------- */

typedef struct {
  const char *name;
  int (*run) (int argc, char **argv);
} BenchMode;

static const BenchMode modes[] = {
  { "kernels", cli_bench_kernels },
  { "llm", cli_bench_llm },
  { "preprocess", bench_preprocess },
  { "vision", cli_bench_vision },
};

int
cli_bench (int argc, char **argv)
{
  g_autoptr(GString) list = g_string_new (NULL);

  if (argc >= 2)
    for (gsize i = 0; i < G_N_ELEMENTS (modes); i++)
      if (strcmp (argv[1], modes[i].name) == 0)
        return modes[i].run (argc - 1, argv + 1);

  for (gsize i = 0; i < G_N_ELEMENTS (modes); i++)
    g_string_append_printf (list, "%s%s", i ? ", " : "", modes[i].name);
  if (argc < 2)
    return cli_fail (CLI_EXIT_USAGE, "usage: tessera-cli bench MODE …; modes: %s", list->str);
  return cli_fail (CLI_EXIT_USAGE, "bench: unknown mode '%s'; modes: %s", argv[1], list->str);
}
