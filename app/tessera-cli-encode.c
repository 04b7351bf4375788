/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli encode --model M --image IMG [--hd N] [--threads N] [--batch B] --out F.npy
 *
 * The projected image embeddings [T, hidden] as float32 .npy, T being the
 * planner's token count: exactly the rows the decoder would read for the
 * image. Timings go to stderr, one line.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tessera-cli.h"
#include "tessera-engine.h"
#include "tessera-image-load.h"

static const char usage[] =
  "usage: tessera-cli encode --model M --image IMG [--hd N] [--threads N] [--batch B] --out F.npy";

int
cli_encode (int argc, char **argv)
{
  const char *model_path = NULL, *image_path = NULL, *out_path = NULL;
  int hd = TSR_HD_NUM_DEFAULT, threads = 0, batch = 0, width, height;
  g_autoptr(GError) error = NULL;
  g_autoptr(GdkPixbuf) pixbuf = NULL;
  g_autofree guint8 *rgb = NULL;
  g_autofree float *embd = NULL;
  TsrGguf *gguf = NULL;
  TsrVision *vision = NULL;
  TsrVisionParams params;
  TsrVisionTimings tm;
  TsrHdPlan plan;
  TsrError err;
  size_t count;
  int rc = CLI_EXIT_OK;

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i], *v;
      if (strcmp (a, "--model") != 0 && strcmp (a, "--image") != 0 && strcmp (a, "--hd") != 0 &&
          strcmp (a, "--threads") != 0 && strcmp (a, "--batch") != 0 && strcmp (a, "--out") != 0)
        return cli_fail (CLI_EXIT_USAGE, "encode: unexpected '%s'; %s", a, usage);
      if (i + 1 >= argc)
        return cli_fail (CLI_EXIT_USAGE, "%s needs a value", a);
      v = argv[++i];
      if (strcmp (a, "--model") == 0)
        model_path = v;
      else if (strcmp (a, "--image") == 0)
        image_path = v;
      else if (strcmp (a, "--out") == 0)
        out_path = v;
      else if (strcmp (a, "--hd") == 0 && !cli_parse_int (v, TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, &hd))
        return cli_fail (CLI_EXIT_USAGE, "--hd takes a whole number from %d to %d, not '%s'",
                         TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, v);
      else if (strcmp (a, "--threads") == 0 && !cli_parse_int (v, 1, 1024, &threads))
        return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
      else if (strcmp (a, "--batch") == 0 && !cli_parse_int (v, 1, 256, &batch))
        return cli_fail (CLI_EXIT_USAGE, "--batch takes a whole number from 1 to 256, not '%s'", v);
    }
  if (model_path == NULL || image_path == NULL || out_path == NULL || *out_path == '\0')
    return cli_fail (CLI_EXIT_USAGE, "%s", usage);

  pixbuf = tessera_image_load (image_path, NULL, &error);
  if (pixbuf == NULL || (rgb = tessera_image_to_rgb8 (pixbuf, NULL, &error)) == NULL)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", error->message);
  width = gdk_pixbuf_get_width (pixbuf);
  height = gdk_pixbuf_get_height (pixbuf);
  g_clear_object (&pixbuf);

  if (tsr_hd_plan (width, height, hd, &plan, &err) != TSR_OK ||
      tsr_gguf_open (model_path, &gguf, &err) != TSR_OK ||
      tsr_vision_new (gguf, &vision, &err) != TSR_OK)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      goto out;
    }
  count = (size_t) plan.tokens * (size_t) tsr_vision_info (vision)->n_out;
  embd = g_try_malloc (count * sizeof (float));
  if (embd == NULL)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "no memory for %d embeddings", plan.tokens);
      goto out;
    }
  tsr_vision_params_init (&params);
  params.hd_num = hd;
  params.n_threads = threads;
  params.batch = batch;
  if (tsr_vision_encode (vision, NULL, rgb, width, height, (size_t) 3 * width, &params, embd, count,
                         &tm, &err) != TSR_OK)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      goto out;
    }
  {
    size_t shape[2] = { (size_t) plan.tokens, (size_t) tsr_vision_info (vision)->n_out };
    if (tsr_npy_write_f32 (out_path, embd, 2, shape, &err) != TSR_OK)
      {
        rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
        goto out;
      }
  }
  fprintf (stderr, "encode: %d×%d at HD-%d: %d views, %d tokens in %.2f s (preprocess %.2f s, "
           "ViT %.2f s = %.0f ms a view at %.1f GFLOP/s, projector %.2f s); %d threads, "
           "batches of %d, %.0f MB working memory\n",
           width, height, hd, tm.views, tm.tokens, tm.total_ms / 1e3, tm.preprocess_ms / 1e3,
           tm.vit_ms / 1e3, tm.ms_per_view, tm.vit_ms > 0 ? tm.vit_gflop / (tm.vit_ms / 1e3) : 0.0,
           tm.projector_ms / 1e3, tm.threads, tm.batch, tm.work_bytes / 1e6);

out:
  tsr_vision_free (vision);
  tsr_gguf_close (gguf);
  return rc;
}
