/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-hd — the dynamic-resolution planner (tsr_hd_*) against the fixture
 * written by tests/reference/hd_reference.py, an independent Python copy of
 * the official HD_transform arithmetic, plus direct checks of the argument
 * limits and invariants that must hold for every plan.
 *
 * Usage: test-hd FIXTURE.json
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tessera-engine.h"

#define MAX_REPORTED_FAILURES 60

static int n_checks;
static int n_failures;
static char current_case[128] = "(no case)";

static void fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
fail (const char *fmt, ...)
{
  va_list ap;
  n_failures++;
  if (n_failures > MAX_REPORTED_FAILURES)
    {
      if (n_failures == MAX_REPORTED_FAILURES + 1)
        fprintf (stderr, "FAIL … (further failures not shown)\n");
      return;
    }
  fprintf (stderr, "FAIL %s: ", current_case);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

#define CHECK(cond, ...) \
  do { n_checks++; if (!(cond)) fail (__VA_ARGS__); } while (0)

#define CHECK_INT(what, got, want) \
  do { \
    int got_ = (got), want_ = (want); \
    n_checks++; \
    if (got_ != want_) \
      fail ("%s = %d, want %d", what, got_, want_); \
  } while (0)

static void
set_case (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
set_case (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (current_case, sizeof current_case, fmt, ap);
  va_end (ap);
}

/* ---- Fixture loading --------------------------------------------------- */

static char *
read_file (const char *path)
{
  FILE *f = fopen (path, "rb");
  char *buf;
  long size;

  if (f == NULL)
    return NULL;
  if (fseek (f, 0, SEEK_END) != 0 || (size = ftell (f)) < 0 || fseek (f, 0, SEEK_SET) != 0)
    {
      fclose (f);
      return NULL;
    }
  buf = malloc ((size_t) size + 1);
  if (buf == NULL || fread (buf, 1, (size_t) size, f) != (size_t) size)
    {
      free (buf);
      fclose (f);
      return NULL;
    }
  buf[size] = '\0';
  fclose (f);
  return buf;
}

/* A required integer member; a malformed fixture is a hard error. */
static int
json_int (const cJSON *obj, const char *key)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive (obj, key);
  if (!cJSON_IsNumber (item))
    {
      fprintf (stderr, "test-hd: fixture: %s: member \"%s\" missing or not a number\n",
               current_case, key);
      exit (2);
    }
  return item->valueint;
}

static int
json_pair (const cJSON *obj, const char *key, int *a, int *b)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive (obj, key);
  if (!cJSON_IsArray (item) || cJSON_GetArraySize (item) != 2 ||
      !cJSON_IsNumber (cJSON_GetArrayItem (item, 0)) ||
      !cJSON_IsNumber (cJSON_GetArrayItem (item, 1)))
    {
      fprintf (stderr, "test-hd: fixture: %s: member \"%s\" is not a pair of numbers\n",
               current_case, key);
      exit (2);
    }
  *a = cJSON_GetArrayItem (item, 0)->valueint;
  *b = cJSON_GetArrayItem (item, 1)->valueint;
  return 1;
}

/* ---- Checks on one plan ------------------------------------------------ */

static double
clampd (double v, double lo, double hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

static int
near (double a, double b, double tol)
{
  return fabs (a - b) <= tol * (1.0 + fabs (b));
}

/* Invariants that hold for every successful plan, whatever the fixture says. */
static void
check_invariants (const TsrHdPlan *p)
{
  const int T = TSR_TILE_SIZE;
  int *col_x0, *col_x1, *row_y0, *row_y1;

  CHECK (p->tiles >= 1 && p->tiles <= p->hd_num, "tiles = %d, not in 1..hd_num (%d)", p->tiles, p->hd_num);
  CHECK_INT ("tiles (rows·cols)", p->tiles, p->rows * p->cols);
  CHECK_INT ("padded_w (336·cols)", p->padded_w, T * p->cols);
  CHECK_INT ("padded_h (336·rows)", p->padded_h, T * p->rows);
  CHECK_INT ("tokens (formula)", p->tokens, (p->tiles + 1) * TSR_TOKENS_PER_VIEW + 1 + (p->rows + 1) * 12);
  CHECK_INT ("transposed (width < height)", p->transposed, p->width < p->height);
  CHECK (p->resized_w >= 1 && p->resized_h >= 1, "resized %d×%d is empty", p->resized_w, p->resized_h);
  CHECK (p->pad_x >= 0 && p->pad_y >= 0, "negative padding offset %d,%d", p->pad_x, p->pad_y);
  CHECK (p->pad_x + p->resized_w <= p->padded_w && p->pad_y + p->resized_h <= p->padded_h,
         "resized %d×%d at %d,%d does not fit in padded %d×%d",
         p->resized_w, p->resized_h, p->pad_x, p->pad_y, p->padded_w, p->padded_h);
  /* Padding only across the short side of the transposed frame, less than a tile. */
  if (p->transposed)
    CHECK (p->pad_y == 0 && p->resized_h == p->padded_h && p->padded_w - p->resized_w < T,
           "portrait plan pads vertically or by a tile or more");
  else
    CHECK (p->pad_x == 0 && p->resized_w == p->padded_w && p->padded_h - p->resized_h < T,
           "landscape plan pads horizontally or by a tile or more");
  CHECK (near (p->scale_x, (double) p->resized_w / p->width, 1e-12),
         "scale_x = %.17g, want resized_w/width = %.17g", p->scale_x, (double) p->resized_w / p->width);
  CHECK (near (p->scale_y, (double) p->resized_h / p->height, 1e-12),
         "scale_y = %.17g, want resized_h/height = %.17g", p->scale_y, (double) p->resized_h / p->height);

  if (p->rows < 1 || p->cols < 1 || p->tiles != p->rows * p->cols || p->tiles > TSR_HD_NUM_MAX)
    return; /* the per-tile checks below would be meaningless */

  col_x0 = calloc ((size_t) p->cols, sizeof (int));
  col_x1 = calloc ((size_t) p->cols, sizeof (int));
  row_y0 = calloc ((size_t) p->rows, sizeof (int));
  row_y1 = calloc ((size_t) p->rows, sizeof (int));
  if (!col_x0 || !col_x1 || !row_y0 || !row_y1)
    {
      fprintf (stderr, "test-hd: out of memory\n");
      exit (2);
    }

  for (int k = 0; k < p->tiles; k++)
    {
      int i = k / p->cols, j = k % p->cols;
      TsrRect c = tsr_hd_tile_canvas_rect (p, k);
      TsrRect crop = tsr_hd_tile_crop (p, k);
      TsrRectF r = tsr_hd_tile_image_rect (p, k);
      double ix, iy, lo, hi;

      CHECK (c.x == T * j && c.y == T * i && c.w == T && c.h == T,
             "tile %d canvas rect %d,%d %d×%d, want %d,%d 336×336", k, c.x, c.y, c.w, c.h, T * j, T * i);

      /* The crop lies in the image and is not empty. */
      CHECK (crop.x >= 0 && crop.y >= 0 && crop.w >= 1 && crop.h >= 1 &&
             crop.x + crop.w <= p->width && crop.y + crop.h <= p->height,
             "tile %d crop %d,%d %d×%d is empty or outside the %d×%d image",
             k, crop.x, crop.y, crop.w, crop.h, p->width, p->height);

      /* The unclipped image rectangle is the canvas square mapped back. */
      CHECK (near (r.x, (T * j - p->pad_x) / p->scale_x, 1e-9) &&
             near (r.y, (T * i - p->pad_y) / p->scale_y, 1e-9) &&
             near (r.w, T / p->scale_x, 1e-9) && near (r.h, T / p->scale_y, 1e-9),
             "tile %d image rect %.6f,%.6f %.6f×%.6f, want %.6f,%.6f %.6f×%.6f", k, r.x, r.y, r.w, r.h,
             (T * j - p->pad_x) / p->scale_x, (T * i - p->pad_y) / p->scale_y, T / p->scale_x, T / p->scale_y);
      tsr_hd_canvas_to_image (p, c.x, c.y, &ix, &iy);
      CHECK (near (ix, r.x, 1e-9) && near (iy, r.y, 1e-9),
             "tile %d: canvas_to_image(%d,%d) = %.6f,%.6f but image rect starts at %.6f,%.6f",
             k, c.x, c.y, ix, iy, r.x, r.y);

      /* The crop is the image rect clipped, start floored, end ceiled
       * (the rect is floating point: allow it to sit a hair off an integer). */
      lo = clampd (r.x, 0, p->width);
      hi = clampd (r.x + r.w, 0, p->width);
      CHECK (crop.x >= (int) floor (lo - 1e-6) && crop.x <= (int) floor (lo + 1e-6) &&
             crop.x + crop.w >= (int) ceil (hi - 1e-6) && crop.x + crop.w <= (int) ceil (hi + 1e-6),
             "tile %d crop x %d..%d disagrees with image rect x %.9f..%.9f", k, crop.x, crop.x + crop.w, lo, hi);
      lo = clampd (r.y, 0, p->height);
      hi = clampd (r.y + r.h, 0, p->height);
      CHECK (crop.y >= (int) floor (lo - 1e-6) && crop.y <= (int) floor (lo + 1e-6) &&
             crop.y + crop.h >= (int) ceil (hi - 1e-6) && crop.y + crop.h <= (int) ceil (hi + 1e-6),
             "tile %d crop y %d..%d disagrees with image rect y %.9f..%.9f", k, crop.y, crop.y + crop.h, lo, hi);

      /* Grid structure: a crop's x extent depends on its column only, its
       * y extent on its row only. */
      if (i == 0)
        {
          col_x0[j] = crop.x;
          col_x1[j] = crop.x + crop.w;
        }
      else
        CHECK (col_x0[j] == crop.x && col_x1[j] == crop.x + crop.w,
               "tile %d crop x %d..%d differs from its column's %d..%d", k, crop.x, crop.x + crop.w,
               col_x0[j], col_x1[j]);
      if (j == 0)
        {
          row_y0[i] = crop.y;
          row_y1[i] = crop.y + crop.h;
        }
      else
        CHECK (row_y0[i] == crop.y && row_y1[i] == crop.y + crop.h,
               "tile %d crop y %d..%d differs from its row's %d..%d", k, crop.y, crop.y + crop.h,
               row_y0[i], row_y1[i]);
    }

  /* With the grid structure, the union of the crops is the whole image iff
   * the column extents cover [0,width) and the row extents [0,height). */
  CHECK (col_x0[0] == 0 && col_x1[p->cols - 1] == p->width,
         "crops span x %d..%d, not the image's 0..%d", col_x0[0], col_x1[p->cols - 1], p->width);
  CHECK (row_y0[0] == 0 && row_y1[p->rows - 1] == p->height,
         "crops span y %d..%d, not the image's 0..%d", row_y0[0], row_y1[p->rows - 1], p->height);
  for (int j = 1; j < p->cols; j++)
    CHECK (col_x0[j] <= col_x1[j - 1] && col_x0[j] >= col_x0[j - 1] && col_x1[j] >= col_x1[j - 1],
           "column %d crop x %d..%d leaves a gap after / goes back from column %d's %d..%d",
           j, col_x0[j], col_x1[j], j - 1, col_x0[j - 1], col_x1[j - 1]);
  for (int i = 1; i < p->rows; i++)
    CHECK (row_y0[i] <= row_y1[i - 1] && row_y0[i] >= row_y0[i - 1] && row_y1[i] >= row_y1[i - 1],
           "row %d crop y %d..%d leaves a gap after / goes back from row %d's %d..%d",
           i, row_y0[i], row_y1[i], i - 1, row_y0[i - 1], row_y1[i - 1]);

  free (col_x0);
  free (col_x1);
  free (row_y0);
  free (row_y1);
}

static int
plan_is_zero (const TsrHdPlan *p)
{
  return p->width == 0 && p->height == 0 && p->hd_num == 0 && p->transposed == 0 &&
         p->resized_w == 0 && p->resized_h == 0 && p->padded_w == 0 && p->padded_h == 0 &&
         p->pad_x == 0 && p->pad_y == 0 && p->rows == 0 && p->cols == 0 && p->tiles == 0 &&
         p->tokens == 0 && p->scale_x == 0.0 && p->scale_y == 0.0;
}

/* A call that must fail with `want`, a message, and a zeroed plan.
 * Failures are reported under the current case name if keep_label is set,
 * else under "W×H HD-N". */
static void
expect_failure (int width, int height, int hd_num, TsrStatus want, int keep_label)
{
  TsrHdPlan plan;
  TsrError err;
  TsrStatus st;

  if (!keep_label)
    set_case ("%d×%d HD-%d", width, height, hd_num);
  memset (&plan, 0x5a, sizeof plan);
  memset (&err, 0, sizeof err);
  st = tsr_hd_plan (width, height, hd_num, &plan, &err);
  CHECK (st == want, "status %d (%s), want %d (%s)", (int) st, tsr_status_name (st),
         (int) want, tsr_status_name (want));
  CHECK (err.status == st, "err.status %d differs from the returned %d", (int) err.status, (int) st);
  CHECK (err.message[0] != '\0', "empty error message");
  CHECK (memchr (err.message, '\0', sizeof err.message) != NULL, "error message not terminated");
  CHECK (strchr (err.message, '\n') == NULL, "error message is not one line: \"%s\"", err.message);
  CHECK (plan_is_zero (&plan), "plan not zeroed on failure");
  /* NULL err is allowed. */
  CHECK (tsr_hd_plan (width, height, hd_num, &plan, NULL) == want, "status differs with err == NULL");
}

static void
check_case (const cJSON *c, int index)
{
  int width = json_int (c, "width"), height = json_int (c, "height"), hd = json_int (c, "hd_num");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive (c, "error");
  const cJSON *crops;
  TsrHdPlan plan;
  TsrError err;
  TsrStatus st;
  int a, b;

  set_case ("case %d (%d×%d HD-%d)", index, width, height, hd);

  if (cJSON_IsTrue (error))
    {
      expect_failure (width, height, hd, TSR_EFORMAT, 1);
      return;
    }

  memset (&err, 0, sizeof err);
  st = tsr_hd_plan (width, height, hd, &plan, &err);
  CHECK (st == TSR_OK, "status %d (%s): %s", (int) st, tsr_status_name (st), err.message);
  if (st != TSR_OK)
    return;

  CHECK_INT ("width", plan.width, width);
  CHECK_INT ("height", plan.height, height);
  CHECK_INT ("hd_num", plan.hd_num, hd);
  CHECK_INT ("transposed", plan.transposed, cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (c, "transposed")));
  json_pair (c, "resized", &a, &b);
  CHECK_INT ("resized_w", plan.resized_w, a);
  CHECK_INT ("resized_h", plan.resized_h, b);
  json_pair (c, "padded", &a, &b);
  CHECK_INT ("padded_w", plan.padded_w, a);
  CHECK_INT ("padded_h", plan.padded_h, b);
  json_pair (c, "pad", &a, &b);
  CHECK_INT ("pad_x", plan.pad_x, a);
  CHECK_INT ("pad_y", plan.pad_y, b);
  CHECK_INT ("rows", plan.rows, json_int (c, "rows"));
  CHECK_INT ("cols", plan.cols, json_int (c, "cols"));
  CHECK_INT ("tiles", plan.tiles, json_int (c, "tiles"));
  CHECK_INT ("tokens", plan.tokens, json_int (c, "tokens"));

  crops = cJSON_GetObjectItemCaseSensitive (c, "crops");
  if (!cJSON_IsArray (crops))
    {
      fprintf (stderr, "test-hd: fixture: %s: \"crops\" is not an array\n", current_case);
      exit (2);
    }
  CHECK_INT ("number of crops", plan.tiles, cJSON_GetArraySize (crops));
  if (plan.tiles == cJSON_GetArraySize (crops))
    for (int k = 0; k < plan.tiles; k++)
      {
        const cJSON *want = cJSON_GetArrayItem (crops, k);
        TsrRect got = tsr_hd_tile_crop (&plan, k);
        int wx, wy, ww, wh;
        if (!cJSON_IsArray (want) || cJSON_GetArraySize (want) != 4)
          {
            fprintf (stderr, "test-hd: fixture: %s: crop %d is not [x,y,w,h]\n", current_case, k);
            exit (2);
          }
        wx = cJSON_GetArrayItem (want, 0)->valueint;
        wy = cJSON_GetArrayItem (want, 1)->valueint;
        ww = cJSON_GetArrayItem (want, 2)->valueint;
        wh = cJSON_GetArrayItem (want, 3)->valueint;
        CHECK (got.x == wx && got.y == wy && got.w == ww && got.h == wh,
               "crop %d = {x %d, y %d, w %d, h %d}, want {x %d, y %d, w %d, h %d}",
               k, got.x, got.y, got.w, got.h, wx, wy, ww, wh);
      }

  check_invariants (&plan);
}

/* ---- Direct checks ------------------------------------------------------ */

static void
check_direct (void)
{
  TsrHdPlan plan;
  TsrError err;

  /* Sizes. */
  expect_failure (0, 5, 25, TSR_EINVAL, 0);
  expect_failure (5, 0, 25, TSR_EINVAL, 0);
  expect_failure (-1, 5, 25, TSR_EINVAL, 0);
  expect_failure (5, -1, 25, TSR_EINVAL, 0);
  expect_failure (0, 0, 25, TSR_EINVAL, 0);
  expect_failure (-2147483647 - 1, 5, 25, TSR_EINVAL, 0);
  expect_failure (70000, 10, 25, TSR_ETOOLARGE, 0);
  expect_failure (10, 70000, 25, TSR_ETOOLARGE, 0);
  expect_failure (TSR_IMAGE_SIDE_MAX + 1, 1, 25, TSR_ETOOLARGE, 0);
  expect_failure (1, TSR_IMAGE_SIDE_MAX + 1, 25, TSR_ETOOLARGE, 0);
  expect_failure (2147483647, 2147483647, 25, TSR_ETOOLARGE, 0);
  /* Budgets. */
  expect_failure (336, 336, 0, TSR_EINVAL, 0);
  expect_failure (336, 336, 101, TSR_EINVAL, 0);
  expect_failure (336, 336, -1, TSR_EINVAL, 0);
  expect_failure (336, 336, TSR_HD_NUM_MAX + 1, TSR_EINVAL, 0);
  /* Shapes the model cannot read: zero pixels across after the resize. */
  expect_failure (1, 60000, 25, TSR_EFORMAT, 0);
  expect_failure (60000, 1, 25, TSR_EFORMAT, 0);
  expect_failure (65535, 3, 1, TSR_EFORMAT, 0);

  /* The limits themselves are accepted. */
  set_case ("limits");
  CHECK (tsr_hd_plan (TSR_IMAGE_SIDE_MAX, TSR_IMAGE_SIDE_MAX, TSR_HD_NUM_MAX, &plan, &err) == TSR_OK,
         "%d×%d HD-%d refused: %s", TSR_IMAGE_SIDE_MAX, TSR_IMAGE_SIDE_MAX, TSR_HD_NUM_MAX, err.message);
  CHECK (tsr_hd_plan (1, 1, TSR_HD_NUM_MIN, &plan, &err) == TSR_OK, "1×1 HD-1 refused: %s", err.message);
  CHECK (tsr_hd_plan (336, 336, TSR_HD_NUM_DEFAULT, &plan, NULL) == TSR_OK, "336×336 at the default refused");
  CHECK_INT ("336×336 HD-default tokens", plan.tokens, 3817);

  /* Worked numbers of model.md §6.6, independent of the fixture. */
  set_case ("model.md §6.6");
  {
    static const struct { int w, h, hd, rw, rh, pw, ph, rows, cols, tokens; } worked[] = {
      { 336, 336, 55, 2352, 2352, 2352, 2352, 7, 7, 7297 },
      { 1024, 768, 25, 1680, 1260, 1680, 1344, 4, 5, 3085 },
      { 3840, 1600, 55, 3696, 1540, 3696, 1680, 5, 11, 8137 },
      { 2480, 3508, 25, 1187, 1680, 1344, 1680, 5, 4, 3097 },
      { 816, 5133, 55, 961, 6048, 1008, 6048, 18, 3, 8149 },
      { 10, 10000, 55, 18, 18480, 336, 18480, 55, 1, 8737 },
    };
    for (size_t n = 0; n < sizeof worked / sizeof worked[0]; n++)
      {
        set_case ("model.md §6.6 %d×%d HD-%d", worked[n].w, worked[n].h, worked[n].hd);
        if (tsr_hd_plan (worked[n].w, worked[n].h, worked[n].hd, &plan, &err) != TSR_OK)
          {
            fail ("refused: %s", err.message);
            continue;
          }
        CHECK (plan.resized_w == worked[n].rw && plan.resized_h == worked[n].rh &&
               plan.padded_w == worked[n].pw && plan.padded_h == worked[n].ph &&
               plan.rows == worked[n].rows && plan.cols == worked[n].cols &&
               plan.tokens == worked[n].tokens,
               "%d×%d→%d×%d %d×%d %d tokens", plan.resized_w, plan.resized_h, plan.padded_w,
               plan.padded_h, plan.rows, plan.cols, plan.tokens);
      }
  }

  /* Every status has a name; clearing accepts NULL. */
  set_case ("errors");
  for (int s = TSR_OK; s <= TSR_ECANCELLED; s++)
    CHECK (tsr_status_name ((TsrStatus) s) != NULL && tsr_status_name ((TsrStatus) s)[0] != '\0',
           "status %d has no name", s);
  tsr_error_clear (NULL);
  memset (&err, 0x5a, sizeof err);
  tsr_error_clear (&err);
  CHECK (err.status == TSR_OK && err.message[0] == '\0', "tsr_error_clear left %d \"%.20s\"",
         (int) err.status, err.message);
}

int
main (int argc, char **argv)
{
  char *text;
  cJSON *root, *cases;
  int n_cases = 0, n_errors = 0;

  if (argc != 2)
    {
      fprintf (stderr, "usage: test-hd FIXTURE.json\n");
      return 2;
    }
  text = read_file (argv[1]);
  if (text == NULL)
    {
      fprintf (stderr, "test-hd: cannot read %s\n", argv[1]);
      return 2;
    }
  root = cJSON_Parse (text);
  free (text);
  cases = cJSON_GetObjectItemCaseSensitive (root, "cases");
  if (!cJSON_IsArray (cases) || cJSON_GetArraySize (cases) == 0)
    {
      fprintf (stderr, "test-hd: %s is not a fixture with a non-empty \"cases\" array\n", argv[1]);
      cJSON_Delete (root);
      return 2;
    }

  {
    const cJSON *c;
    cJSON_ArrayForEach (c, cases)
      {
        check_case (c, n_cases);
        n_errors += cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (c, "error"));
        n_cases++;
      }
  }
  cJSON_Delete (root);

  check_direct ();

  printf ("test-hd: %d fixture cases (%d errors), %d checks, %d failed\n",
          n_cases, n_errors, n_checks, n_failures);
  return n_failures == 0 ? 0 : 1;
}
