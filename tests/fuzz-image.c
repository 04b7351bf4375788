/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * fuzz-image.c — a short, deterministic mutation fuzzer for the image path:
 * damaged PNG, JPEG, BMP, TIFF, GIF-like and WebP bytes go through
 * tessera_image_load_bytes() and, when they decode, through the planner.
 * Each must either decode to a sane image or fail with a message; a crash,
 * a sanitizer report or an error without text fails the test.
 *
 *   fuzz-image [ITERATIONS] [SEED]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera-engine.h"
#include "tessera-image-load.h"

static guint64 rng_state;

static guint32
rng (void)
{
  /* xorshift64*: fixed seed, same mutations on every machine. */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (guint32) ((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static GBytes *
seed_image (const char *format)
{
  g_autoptr(GdkPixbuf) p = gdk_pixbuf_new (GDK_COLORSPACE_RGB, TRUE, 8, 29, 17);
  guchar *px = gdk_pixbuf_get_pixels (p);
  int stride = gdk_pixbuf_get_rowstride (p);
  gchar *buf = NULL;
  gsize len = 0;

  for (int y = 0; y < 17; y++)
    for (int x = 0; x < 29; x++)
      {
        guchar *q = px + y * stride + x * 4;
        q[0] = x * 8;
        q[1] = y * 15;
        q[2] = (x ^ y) * 9;
        q[3] = 255 - x;
      }
  if (!gdk_pixbuf_save_to_buffer (p, &buf, &len, format, NULL, NULL))
    return NULL;
  return g_bytes_new_take (buf, len);
}

static void
mutate (GByteArray *a)
{
  static const guchar interesting[] = { 0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe };
  int n = 1 + rng () % 8;

  for (int i = 0; i < n && a->len > 0; i++)
    {
      guint pos = rng () % a->len;
      switch (rng () % 6)
        {
        case 0: a->data[pos] ^= 1u << (rng () % 8); break;
        case 1: a->data[pos] = interesting[rng () % sizeof interesting]; break;
        case 2: a->data[pos] = rng (); break;
        case 3: g_byte_array_set_size (a, pos + 1); break;                 /* truncate */
        case 4:
          g_byte_array_set_size (a, a->len + 1);
          memmove (a->data + pos + 1, a->data + pos, a->len - pos - 1);
          a->data[pos] = rng ();
          break;
        case 5: g_byte_array_remove_index (a, pos); break;
        }
    }
}

int
main (int argc, char **argv)
{
  static const char *formats[] = { "png", "jpeg", "bmp", "tiff", "ico", "webp" };
  GBytes *seeds[G_N_ELEMENTS (formats)];
  int n_seeds = 0;
  long iterations = argc > 1 ? strtol (argv[1], NULL, 10) : 3000;
  long decoded = 0, refused = 0;

  rng_state = argc > 2 ? strtoull (argv[2], NULL, 10) : 0x7e55e7a;
  if (rng_state == 0)
    rng_state = 1;

  for (gsize i = 0; i < G_N_ELEMENTS (formats); i++)
    {
      GBytes *b = seed_image (formats[i]);
      if (b != NULL)
        seeds[n_seeds++] = b;
    }
  if (n_seeds < 4)
    {
      fprintf (stderr, "fuzz-image: only %d image writers available\n", n_seeds);
      return 1;
    }

  for (long it = 0; it < iterations; it++)
    {
      GBytes *seed = seeds[rng () % n_seeds];
      gsize len;
      const guchar *data = g_bytes_get_data (seed, &len);
      g_autoptr(GByteArray) a = g_byte_array_sized_new (len);
      g_autoptr(GBytes) input = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(GdkPixbuf) p = NULL;

      g_byte_array_append (a, data, len);
      mutate (a);
      input = g_bytes_new (a->data, a->len);
      p = tessera_image_load_bytes (input, NULL, &error);

      if (p == NULL)
        {
          if (error == NULL || error->message == NULL || error->message[0] == '\0')
            {
              fprintf (stderr, "fuzz-image: iteration %ld failed without a message\n", it);
              return 1;
            }
          refused++;
          continue;
        }

      {
        int w = gdk_pixbuf_get_width (p), h = gdk_pixbuf_get_height (p);
        if (w <= 0 || h <= 0 || w > TSR_IMAGE_SIDE_MAX || h > TSR_IMAGE_SIDE_MAX)
          {
            fprintf (stderr, "fuzz-image: iteration %ld decoded to %d×%d\n", it, w, h);
            return 1;
          }
        for (int hd = TSR_HD_NUM_MIN; hd <= TSR_HD_NUM_MAX; hd += 11)
          {
            TsrHdPlan plan;
            TsrError err;
            if (tsr_hd_plan (w, h, hd, &plan, &err) == TSR_OK)
              {
                if (plan.tiles < 1 || plan.tiles > hd)
                  {
                    fprintf (stderr, "fuzz-image: %d×%d at HD-%d planned %d tiles\n", w, h, hd, plan.tiles);
                    return 1;
                  }
              }
            else if (err.message[0] == '\0')
              {
                fprintf (stderr, "fuzz-image: planner refused %d×%d without a message\n", w, h);
                return 1;
              }
          }
        decoded++;
      }
    }

  for (int i = 0; i < n_seeds; i++)
    g_bytes_unref (seeds[i]);
  printf ("fuzz-image: %ld inputs from %d formats: %ld decoded, %ld refused with a message\n",
          iterations, n_seeds, decoded, refused);
  return 0;
}
