/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli grid — the planner's answer for an image file or a size.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tessera-cli.h"
#include "tessera-engine.h"
#include "tessera-image-load.h"

/* "3840x1600" or "3840×1600". */
static gboolean
parse_size (const char *text, int *w, int *h)
{
  g_auto(GStrv) parts = NULL;
  if (strstr (text, "×") != NULL)
    parts = g_strsplit (text, "×", 2);
  else
    parts = g_strsplit (text, "x", 2);
  return g_strv_length (parts) == 2 &&
         cli_parse_int (parts[0], 1, G_MAXINT, w) &&
         cli_parse_int (parts[1], 1, G_MAXINT, h);
}

static void
print_json (const TsrHdPlan *p)
{
  GString *s = g_string_new (NULL);
  g_string_append_printf (s,
      "{\"width\": %d, \"height\": %d, \"hd_num\": %d, \"transposed\": %s, "
      "\"resized\": [%d, %d], \"padded\": [%d, %d], \"rows\": %d, \"cols\": %d, "
      "\"tiles\": %d, \"tokens\": %d, \"crops\": [",
      p->width, p->height, p->hd_num, p->transposed ? "true" : "false",
      p->resized_w, p->resized_h, p->padded_w, p->padded_h, p->rows, p->cols,
      p->tiles, p->tokens);
  for (int i = 0; i < p->tiles; i++)
    {
      TsrRect r = tsr_hd_tile_crop (p, i);
      g_string_append_printf (s, "%s{\"x\": %d, \"y\": %d, \"w\": %d, \"h\": %d}",
                              i ? ", " : "", r.x, r.y, r.w, r.h);
    }
  g_string_append (s, "]}\n");
  fputs (s->str, stdout);
  g_string_free (s, TRUE);
}

static void
print_text (const TsrHdPlan *p)
{
  printf ("image      %d × %d%s\n", p->width, p->height, p->transposed ? " (portrait: planned transposed)" : "");
  printf ("budget     HD-%d\n", p->hd_num);
  printf ("resized    %d × %d\n", p->resized_w, p->resized_h);
  printf ("padded     %d × %d\n", p->padded_w, p->padded_h);
  printf ("grid       %d rows × %d cols = %d tiles (+1 global view)\n", p->rows, p->cols, p->tiles);
  printf ("tokens     %d\n", p->tokens);
  for (int i = 0; i < p->tiles; i++)
    {
      TsrRect r = tsr_hd_tile_crop (p, i);
      printf ("tile %-4d  x %d, y %d, %d × %d\n", i + 1, r.x, r.y, r.w, r.h);
    }
}

int
cli_grid (int argc, char **argv)
{
  const char *target = NULL;
  gboolean json = FALSE;
  int hd = TSR_HD_NUM_DEFAULT, threads = 0;
  int w = 0, h = 0;
  TsrHdPlan plan;
  TsrError err;

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--json") == 0)
        json = TRUE;
      else if (strcmp (a, "--hd") == 0 || strcmp (a, "--threads") == 0)
        {
          gboolean is_hd = a[2] == 'h';
          if (i + 1 >= argc)
            return cli_fail (CLI_EXIT_USAGE, "%s needs a value", a);
          if (is_hd && !cli_parse_int (argv[++i], TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, &hd))
            return cli_fail (CLI_EXIT_USAGE, "--hd takes a whole number from %d to %d, not '%s'",
                             TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, argv[i]);
          if (!is_hd && !cli_parse_int (argv[++i], 1, 1024, &threads))
            return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'",
                             argv[i]);
        }
      else if (a[0] == '-' && a[1] != '\0')
        return cli_fail (CLI_EXIT_USAGE, "grid: unknown option '%s'", a);
      else if (target == NULL)
        target = a;
      else
        return cli_fail (CLI_EXIT_USAGE, "grid takes one IMAGE or WxH, got also '%s'", a);
    }
  if (target == NULL)
    return cli_fail (CLI_EXIT_USAGE, "usage: tessera-cli grid [--hd N] [--json] (IMAGE | WxH)");

  if (!g_file_test (target, G_FILE_TEST_EXISTS) && parse_size (target, &w, &h))
    ;
  else
    {
      g_autoptr(GError) error = NULL;
      if (!tessera_image_probe (target, &w, &h, &error))
        return cli_fail (CLI_EXIT_RUNTIME, "%s", error->message);
    }

  if (tsr_hd_plan (w, h, hd, &plan, &err) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);

  if (json)
    print_json (&plan);
  else
    print_text (&plan);
  return CLI_EXIT_OK;
}
