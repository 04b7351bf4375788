/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-picture.h — a decoded image ready to draw at any zoom: the
 * full-resolution pixels plus a chain of halved copies, so that a 12000-
 * pixel scan shown at 10 % is averaged, not sampled every tenth pixel.
 *
 * Building one is slow for big images and touches no widget, so it is done
 * on the worker thread that decoded the file.
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

typedef struct _TesseraPicture TesseraPicture;

#define TESSERA_TYPE_PICTURE (tessera_picture_get_type ())

GType           tessera_picture_get_type    (void) G_GNUC_CONST;
TesseraPicture *tessera_picture_new         (GdkPixbuf      *pixbuf);
TesseraPicture *tessera_picture_ref         (TesseraPicture *self);
void            tessera_picture_unref       (TesseraPicture *self);

GdkPixbuf      *tessera_picture_get_pixbuf  (TesseraPicture *self);
int             tessera_picture_get_width   (TesseraPicture *self);
int             tessera_picture_get_height  (TesseraPicture *self);
/* The smallest copy that still has at least one pixel per screen pixel at
 * `zoom` (screen pixels per image pixel). */
GdkTexture     *tessera_picture_get_texture (TesseraPicture *self,
                                             double          zoom);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TesseraPicture, tessera_picture_unref)

G_END_DECLS
