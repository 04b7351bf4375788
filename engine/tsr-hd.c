/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-hd.c — the dynamic-resolution planner: the arithmetic of the official
 * HD_transform and padding_336 (model.md §6.2), with no pixels involved.
 *
 * The model works in a frame where the image is landscape; we compute there
 * with the same double arithmetic and truncations as the Python code (so
 * borderline aspect ratios land on the same side), then express the result
 * in the original orientation, which is what the user sees.
 */
#include "tessera-engine.h"
#include "tsr-error.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static int
largest_column_count (double ratio, int hd_num)
{
  /* The official loop: grow the column count while cols·ceil(cols/ratio)
   * tiles still fit the budget. ceil(…) ≥ 1, so it ends by hd_num + 1. */
  int scale = 1;
  while (scale * ceil (scale / ratio) <= hd_num)
    scale++;
  return scale - 1;
}

TsrStatus
tsr_hd_plan (int width, int height, int hd_num, TsrHdPlan *plan, TsrError *err)
{
  memset (plan, 0, sizeof *plan);

  if (width <= 0 || height <= 0)
    return tsr_error_set (err, TSR_EINVAL,
                          "The image has no pixels (%d×%d); open an image with content.",
                          width, height);
  if (width > TSR_IMAGE_SIDE_MAX || height > TSR_IMAGE_SIDE_MAX)
    return tsr_error_set (err, TSR_ETOOLARGE,
                          "The image is %d×%d pixels; sides above %d are not supported. "
                          "Scale it down or crop it first.",
                          width, height, TSR_IMAGE_SIDE_MAX);
  if (hd_num < TSR_HD_NUM_MIN || hd_num > TSR_HD_NUM_MAX)
    return tsr_error_set (err, TSR_EINVAL,
                          "HD-%d is out of range; choose a tile budget from %d to %d.",
                          hd_num, TSR_HD_NUM_MIN, TSR_HD_NUM_MAX);

  int transposed = width < height;
  int long_side = transposed ? height : width;
  int short_side = transposed ? width : height;
  double ratio = (double) long_side / (double) short_side;

  int scale = largest_column_count (ratio, hd_num);
  int new_w = scale * TSR_TILE_SIZE;
  int new_h = (int) ((double) new_w / ratio);

  if (new_h <= 0)
    return tsr_error_set (err, TSR_EFORMAT,
                          "A %d×%d image is too elongated for HD-%d: the model would shrink "
                          "its short side to nothing. Crop it into pieces closer to square.",
                          width, height, hd_num);

  int tar = (new_h + TSR_TILE_SIZE - 1) / TSR_TILE_SIZE * TSR_TILE_SIZE;
  int top = (tar - new_h) / 2;

  plan->width = width;
  plan->height = height;
  plan->hd_num = hd_num;
  plan->transposed = transposed;
  if (transposed)
    {
      plan->resized_w = new_h;
      plan->resized_h = new_w;
      plan->padded_w = tar;
      plan->padded_h = new_w;
      plan->pad_x = top;
      plan->pad_y = 0;
    }
  else
    {
      plan->resized_w = new_w;
      plan->resized_h = new_h;
      plan->padded_w = new_w;
      plan->padded_h = tar;
      plan->pad_x = 0;
      plan->pad_y = top;
    }
  plan->cols = plan->padded_w / TSR_TILE_SIZE;
  plan->rows = plan->padded_h / TSR_TILE_SIZE;
  plan->tiles = plan->rows * plan->cols;
  plan->tokens = (plan->tiles + 1) * TSR_TOKENS_PER_VIEW + 1 + (plan->rows + 1) * 12;
  plan->scale_x = (double) plan->resized_w / (double) width;
  plan->scale_y = (double) plan->resized_h / (double) height;

  tsr_error_clear (err);
  return TSR_OK;
}

TsrRect
tsr_hd_tile_canvas_rect (const TsrHdPlan *plan, int index)
{
  TsrRect r = { 0, 0, 0, 0 };
  if (plan->cols <= 0 || index < 0 || index >= plan->tiles)
    return r;
  r.x = (index % plan->cols) * TSR_TILE_SIZE;
  r.y = (index / plan->cols) * TSR_TILE_SIZE;
  r.w = TSR_TILE_SIZE;
  r.h = TSR_TILE_SIZE;
  return r;
}

void
tsr_hd_canvas_to_image (const TsrHdPlan *plan, double cx, double cy, double *ix, double *iy)
{
  *ix = (cx - plan->pad_x) * plan->width / plan->resized_w;
  *iy = (cy - plan->pad_y) * plan->height / plan->resized_h;
}

TsrRectF
tsr_hd_tile_image_rect (const TsrHdPlan *plan, int index)
{
  TsrRectF f = { 0, 0, 0, 0 };
  TsrRect c = tsr_hd_tile_canvas_rect (plan, index);
  double x1, y1;
  if (c.w == 0)
    return f;
  tsr_hd_canvas_to_image (plan, c.x, c.y, &f.x, &f.y);
  tsr_hd_canvas_to_image (plan, c.x + c.w, c.y + c.h, &x1, &y1);
  f.w = x1 - f.x;
  f.h = y1 - f.y;
  return f;
}

/* Canvas coordinate c along an axis (offset pad, resized length n, original
 * length orig) to original pixels, rounded down or up, clamped to [0, orig].
 * Integer arithmetic keeps tile borders that fall exactly on a pixel edge
 * from drifting by one. */
static int
canvas_edge_to_image (int c, int pad, int n, int orig, int round_up)
{
  int64_t num = (int64_t) (c - pad) * orig;
  int64_t q;
  if (num <= 0)
    return 0;
  q = round_up ? (num + n - 1) / n : num / n;
  return q > orig ? orig : (int) q;
}

TsrRect
tsr_hd_tile_crop (const TsrHdPlan *plan, int index)
{
  TsrRect r = { 0, 0, 0, 0 };
  TsrRect c = tsr_hd_tile_canvas_rect (plan, index);
  int x0, y0, x1, y1;
  if (c.w == 0)
    return r;
  x0 = canvas_edge_to_image (c.x, plan->pad_x, plan->resized_w, plan->width, 0);
  x1 = canvas_edge_to_image (c.x + c.w, plan->pad_x, plan->resized_w, plan->width, 1);
  y0 = canvas_edge_to_image (c.y, plan->pad_y, plan->resized_h, plan->height, 0);
  y1 = canvas_edge_to_image (c.y + c.h, plan->pad_y, plan->resized_h, plan->height, 1);
  r.x = x0;
  r.y = y0;
  r.w = x1 - x0;
  r.h = y1 - y0;
  return r;
}
