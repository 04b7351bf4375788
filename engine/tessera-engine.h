/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-engine.h — the one public header of Tessera's engine.
 *
 * The engine runs InternLM-XComposer2-4KHD on the CPU. It is plain C11 with
 * no GLib and no GTK: it takes RGB8 pixels and returns status codes, each
 * with a message a person can act on. It never exits or aborts on bad input.
 *
 * Errors
 *   Every fallible call returns a TsrStatus (TSR_OK is 0) and, when given a
 *   TsrError, fills it with the status and a one-line message. The message
 *   says what happened and what to do; the app shows it as it is.
 *
 * Thread safety
 *   Functions that take no object are pure and may be called from any
 *   thread. The planner (tsr_hd_*) is pure arithmetic.
 *
 * Today this header covers the dynamic-resolution planner: how the model cuts
 * an image of W×H pixels into 336×336 tiles for a budget of HD-N tiles.
 */
#ifndef TESSERA_ENGINE_H
#define TESSERA_ENGINE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Status codes and errors ========================================== */

typedef enum {
  TSR_OK = 0,
  TSR_EINVAL,      /* an argument is out of range (a programmer or user value) */
  TSR_EIO,         /* reading or writing a file failed */
  TSR_EFORMAT,     /* a file is not what it claims to be, or is damaged */
  TSR_ENOMEM,      /* memory could not be had */
  TSR_ETOOLARGE,   /* the input exceeds a documented limit */
  TSR_ECANCELLED,  /* the caller's abort callback asked to stop */
} TsrStatus;

#define TSR_ERROR_MESSAGE_MAX 512

typedef struct {
  TsrStatus status;
  char      message[TSR_ERROR_MESSAGE_MAX];
} TsrError;

/* A short constant name for a status ("invalid argument", …). */
const char *tsr_status_name (TsrStatus status);

/* Clears an error to TSR_OK with an empty message. NULL is allowed. */
void        tsr_error_clear (TsrError *err);

/* ==== Element types ===================================================== *
 *
 * The values are ggml's type ids, so they can be written to and read from
 * GGUF files as they are. Q8_0 and Q4_0 use ggml's block layouts: 32
 * values a block, one f16 scale each (34 and 18 bytes a block).
 */
typedef enum {
  TSR_DTYPE_F32  = 0,
  TSR_DTYPE_F16  = 1,
  TSR_DTYPE_Q4_0 = 2,
  TSR_DTYPE_Q8_0 = 8,
  TSR_DTYPE_BF16 = 30,
} TsrDType;

/* ==== The dynamic-resolution planner (HD_transform) ==================== *
 *
 * For an image of width×height pixels and a budget of hd_num tiles, the
 * model (model.md §6.2):
 *   1. transposes portrait images (width < height), so the long side is x;
 *   2. finds the largest column count c with c·ceil(c/ratio) ≤ hd_num;
 *   3. resizes to (336·c) × int(336·c/ratio) in that frame;
 *   4. pads white above and below to a multiple of 336 (floor half on top);
 *   5. transposes back, and cuts 336×336 tiles in row-major order;
 *   6. adds one global 336×336 view of the whole padded canvas.
 * The planner reproduces exactly that arithmetic, and maps every tile back
 * into the original image's coordinates so the UI can draw what the model
 * will see.
 */

#define TSR_TILE_SIZE    336
#define TSR_HD_NUM_MIN   1
#define TSR_HD_NUM_MAX   100
#define TSR_HD_NUM_DEFAULT 25
/* Neither side of an input image may exceed this many pixels. */
#define TSR_IMAGE_SIDE_MAX 65535
/* Image tokens per 336×336 view after the 2×2 merge: 12×12. */
#define TSR_TOKENS_PER_VIEW 144

typedef struct {
  int x, y, w, h;
} TsrRect;

typedef struct {
  double x, y, w, h;
} TsrRectF;

typedef struct {
  /* What was asked. */
  int    width, height;       /* original image, pixels */
  int    hd_num;              /* tile budget */
  /* What the model does with it, in the original orientation. */
  int    transposed;          /* 1 if the image was portrait */
  int    resized_w, resized_h;/* the image after resizing */
  int    padded_w, padded_h;  /* the canvas after white padding: 336·cols × 336·rows */
  int    pad_x, pad_y;        /* offset of the resized image on the canvas
                               * (pad_x > 0 only for portrait images) */
  int    rows, cols;          /* the tile grid */
  int    tiles;               /* rows·cols, ≤ hd_num; the global view is extra */
  int    tokens;              /* image tokens incl. separators:
                               * (tiles+1)·144 + 1 + (rows+1)·12 */
  /* Canvas pixels per original pixel along each axis. */
  double scale_x, scale_y;
} TsrHdPlan;

/* Plans width×height at budget hd_num (TSR_HD_NUM_MIN..TSR_HD_NUM_MAX).
 * Fails with TSR_EINVAL for a non-positive size or a budget out of range,
 * TSR_ETOOLARGE for a side above TSR_IMAGE_SIDE_MAX, and TSR_EFORMAT for
 * shapes the model cannot read at that budget (a 1×60000 strip resizes to
 * zero pixels across). On failure *plan is zeroed. */
TsrStatus tsr_hd_plan (int width, int height, int hd_num, TsrHdPlan *plan, TsrError *err);

/* Tile `index` (0 ≤ index < plan->tiles, row-major) on the padded canvas,
 * in canvas pixels: always a full 336×336 square. */
TsrRect   tsr_hd_tile_canvas_rect (const TsrHdPlan *plan, int index);

/* The same tile in original-image coordinates, not clipped: parts that
 * fall outside [0,width)×[0,height) are padding. */
TsrRectF  tsr_hd_tile_image_rect (const TsrHdPlan *plan, int index);

/* The original-image pixels a tile touches, clipped to the image: the
 * start edge rounded down and the end edge rounded up, in exact integer
 * arithmetic, so w, h ≥ 1 and neighbouring crops may share a pixel row
 * or column where a tile border falls inside a source pixel. */
TsrRect   tsr_hd_tile_crop (const TsrHdPlan *plan, int index);

/* Maps a canvas point to original-image coordinates (unclipped). */
void      tsr_hd_canvas_to_image (const TsrHdPlan *plan, double cx, double cy,
                                  double *ix, double *iy);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_ENGINE_H */
