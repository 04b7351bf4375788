/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli preprocess — the tensors the vision tower would be fed for an
 * image: DIR/global.npy [3,336,336] and DIR/hd.npy [3,H,W], float32.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include "tessera-cli.h"
#include "tessera-engine.h"
#include "tessera-image-load.h"

static const char usage[] = "usage: tessera-cli preprocess [--hd N] [--threads N] IMAGE --out DIR";

static int
write_npy (const char *dir, const char *name, const float *data, int ndim, const size_t *shape)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  TsrError err;
  if (tsr_npy_write_f32 (path, data, ndim, shape, &err) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
  return CLI_EXIT_OK;
}

int
cli_preprocess (int argc, char **argv)
{
  const char *image_path = NULL, *out_dir = NULL;
  int hd = TSR_HD_NUM_DEFAULT, threads = 0, rc;
  g_autoptr(GError) error = NULL;
  g_autoptr(GdkPixbuf) pixbuf = NULL;
  g_autofree guint8 *rgb = NULL;
  g_autofree guint8 *canvas_px = NULL;
  g_autofree float *hd_tensor = NULL;
  g_autofree float *view = NULL;
  TsrImage image, canvas;
  TsrImageSizes sizes;
  TsrHdPlan plan;
  TsrError err;

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--hd") == 0 || strcmp (a, "--threads") == 0 || strcmp (a, "--out") == 0)
        {
          if (i + 1 >= argc)
            return cli_fail (CLI_EXIT_USAGE, "%s needs a value", a);
          const char *v = argv[++i];
          if (a[2] == 'h' && !cli_parse_int (v, TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, &hd))
            return cli_fail (CLI_EXIT_USAGE, "--hd takes a whole number from %d to %d, not '%s'",
                             TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, v);
          if (a[2] == 't' && !cli_parse_int (v, 1, 1024, &threads))
            return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
          if (a[2] == 'o')
            {
              if (*v == '\0')
                return cli_fail (CLI_EXIT_USAGE, "--out needs a folder name");
              out_dir = v;
            }
        }
      else if (a[0] == '-' && a[1] != '\0')
        return cli_fail (CLI_EXIT_USAGE, "preprocess: unknown option '%s'; %s", a, usage);
      else if (image_path == NULL)
        image_path = a;
      else
        return cli_fail (CLI_EXIT_USAGE, "preprocess takes one IMAGE, got also '%s'", a);
    }
  if (image_path == NULL || out_dir == NULL)
    return cli_fail (CLI_EXIT_USAGE, "%s", usage);

  pixbuf = tessera_image_load (image_path, NULL, &error);
  if (pixbuf == NULL)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", error->message);
  rgb = tessera_image_to_rgb8 (pixbuf, NULL, &error);
  if (rgb == NULL)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", error->message);
  image.width = gdk_pixbuf_get_width (pixbuf);
  image.height = gdk_pixbuf_get_height (pixbuf);
  image.stride = (size_t) 3 * image.width;
  image.rgb = rgb;
  /* Hold at most two copies of the image at a time: the decoded one goes
   * as soon as the engine's RGB copy exists. */
  g_clear_object (&pixbuf);

  if (tsr_hd_plan (image.width, image.height, hd, &plan, &err) != TSR_OK ||
      tsr_image_sizes (&plan, threads, &sizes, &err) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);

  canvas_px = g_try_malloc (sizes.canvas_bytes);
  if (canvas_px == NULL)
    return cli_fail (CLI_EXIT_RUNTIME, "no memory for the %d×%d canvas (%zu bytes)",
                     plan.padded_w, plan.padded_h, sizes.canvas_bytes);
  if (tsr_image_hd_canvas (&image, &plan, threads, canvas_px, &err) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
  g_clear_pointer (&rgb, g_free);

  canvas.width = plan.padded_w;
  canvas.height = plan.padded_h;
  canvas.stride = (size_t) 3 * plan.padded_w;
  canvas.rgb = canvas_px;

  hd_tensor = g_try_malloc (sizes.tensor_bytes);
  view = g_try_malloc (sizes.view_bytes);
  if (hd_tensor == NULL || view == NULL)
    return cli_fail (CLI_EXIT_RUNTIME, "no memory for the %d×%d float tensor (%zu bytes)",
                     plan.padded_w, plan.padded_h, sizes.tensor_bytes);
  if (tsr_image_normalize (&canvas, threads, hd_tensor, &err) != TSR_OK ||
      tsr_image_global_view (&canvas, view, &err) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);

  if (g_mkdir_with_parents (out_dir, 0755) != 0)
    {
      int e = errno;
      return cli_fail (CLI_EXIT_RUNTIME, "could not create the folder '%s': %s", out_dir, g_strerror (e));
    }
  {
    size_t gshape[3] = { 3, TSR_TILE_SIZE, TSR_TILE_SIZE };
    size_t hshape[3] = { 3, (size_t) plan.padded_h, (size_t) plan.padded_w };
    if ((rc = write_npy (out_dir, "global.npy", view, 3, gshape)) != CLI_EXIT_OK ||
        (rc = write_npy (out_dir, "hd.npy", hd_tensor, 3, hshape)) != CLI_EXIT_OK)
      return rc;
  }
  return CLI_EXIT_OK;
}
