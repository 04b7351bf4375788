/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-window.h — a window showing one image and how the model tiles it.
 */
#pragma once

#include <adwaita.h>

#include "tessera-image-view.h"

G_BEGIN_DECLS

#define TESSERA_TYPE_WINDOW (tessera_window_get_type ())
G_DECLARE_FINAL_TYPE (TesseraWindow, tessera_window, TESSERA, WINDOW, AdwApplicationWindow)

TesseraWindow    *tessera_window_new             (GtkApplication *application);

/* Decodes the file on a worker thread and shows it; an error becomes a toast
 * and the window keeps what it showed before. */
void              tessera_window_open_file       (TesseraWindow  *self,
                                                  GFile          *file);
gboolean          tessera_window_is_loading      (TesseraWindow  *self);

TesseraImageView *tessera_window_get_image_view  (TesseraWindow  *self);
/* The status line under the image: grid, tiles used, tokens, sizes. */
const char       *tessera_window_get_status_text (TesseraWindow  *self);
/* The last error shown to the user, or NULL. For tests. */
const char       *tessera_window_get_last_error  (TesseraWindow  *self);

G_END_DECLS
