/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "config.h"

#include "tessera-picture.h"

/* Halving stops below this side: the inset and tiny zooms need no less. */
#define SMALLEST_SIDE 256
#define MAX_LEVELS 16

struct _TesseraPicture
{
  gatomicrefcount ref_count;
  GdkPixbuf      *pixbuf;
  int             n_levels;
  GdkPixbuf      *levels[MAX_LEVELS];   /* level 0 is pixbuf itself */
  GdkTexture     *textures[MAX_LEVELS];
};

G_DEFINE_BOXED_TYPE (TesseraPicture, tessera_picture, tessera_picture_ref, tessera_picture_unref)

TesseraPicture *
tessera_picture_new (GdkPixbuf *pixbuf)
{
  TesseraPicture *self;

  g_return_val_if_fail (GDK_IS_PIXBUF (pixbuf), NULL);

  self = g_new0 (TesseraPicture, 1);
  g_atomic_ref_count_init (&self->ref_count);
  self->pixbuf = g_object_ref (pixbuf);
  self->levels[0] = g_object_ref (pixbuf);
  self->n_levels = 1;

  /* Bilinear at exactly half size averages each 2×2 block, which is the
   * box filter a mipmap wants. */
  while (self->n_levels < MAX_LEVELS)
    {
      GdkPixbuf *prev = self->levels[self->n_levels - 1];
      int w = gdk_pixbuf_get_width (prev), h = gdk_pixbuf_get_height (prev);
      GdkPixbuf *half;
      if (MAX (w, h) / 2 < SMALLEST_SIDE || MIN (w, h) < 2)
        break;
      half = gdk_pixbuf_scale_simple (prev, w / 2, h / 2, GDK_INTERP_BILINEAR);
      if (half == NULL)   /* out of memory: draw from the levels we have */
        break;
      self->levels[self->n_levels++] = half;
    }
  for (int i = 0; i < self->n_levels; i++)
    self->textures[i] = gdk_texture_new_for_pixbuf (self->levels[i]);
  return self;
}

TesseraPicture *
tessera_picture_ref (TesseraPicture *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_atomic_ref_count_inc (&self->ref_count);
  return self;
}

void
tessera_picture_unref (TesseraPicture *self)
{
  g_return_if_fail (self != NULL);
  if (!g_atomic_ref_count_dec (&self->ref_count))
    return;
  for (int i = 0; i < self->n_levels; i++)
    {
      g_clear_object (&self->textures[i]);
      g_clear_object (&self->levels[i]);
    }
  g_clear_object (&self->pixbuf);
  g_free (self);
}

GdkPixbuf *
tessera_picture_get_pixbuf (TesseraPicture *self)
{
  return self->pixbuf;
}

int
tessera_picture_get_width (TesseraPicture *self)
{
  return gdk_pixbuf_get_width (self->pixbuf);
}

int
tessera_picture_get_height (TesseraPicture *self)
{
  return gdk_pixbuf_get_height (self->pixbuf);
}

GdkTexture *
tessera_picture_get_texture (TesseraPicture *self, double zoom)
{
  int level = 0;
  double w = gdk_pixbuf_get_width (self->pixbuf);
  while (level + 1 < self->n_levels &&
         gdk_pixbuf_get_width (self->levels[level + 1]) >= w * zoom)
    level++;
  return self->textures[level];
}
