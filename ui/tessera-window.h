/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-window.h — a window showing one image and how the model tiles it.
 */
#pragma once

#include <adwaita.h>

#include "tessera-history.h"
#include "tessera-image-view.h"
#include "tessera-worker.h"
#include "tessera-chat-view.h"

G_BEGIN_DECLS

#define TESSERA_TYPE_WINDOW (tessera_window_get_type ())
G_DECLARE_FINAL_TYPE (TesseraWindow, tessera_window, TESSERA, WINDOW, AdwApplicationWindow)

/* A window without a model or a history (tests of the image side). */
TesseraWindow    *tessera_window_new             (GtkApplication *application);
/* A window that asks `worker` and keeps conversations in `history`; either
 * may be NULL (the chat pane then says what is missing). */
TesseraWindow    *tessera_window_new_full        (GtkApplication *application,
                                                  TesseraWorker  *worker,
                                                  TesseraHistory *history);

/* Decodes the file on a worker thread and shows it; an error becomes a toast
 * and the window keeps what it showed before. */
void              tessera_window_open_file       (TesseraWindow  *self,
                                                  GFile          *file);
gboolean          tessera_window_is_loading      (TesseraWindow  *self);

TesseraImageView *tessera_window_get_image_view  (TesseraWindow  *self);
/* The status line under the image: grid, tiles used, tokens, sizes. */
const char       *tessera_window_get_status_text (TesseraWindow  *self);
TesseraChatView  *tessera_window_get_chat_view   (TesseraWindow  *self);
/* The conversation shown, 0 before its first question. */
gint64            tessera_window_get_conversation (TesseraWindow *self);
/* Shows a conversation of the history: its image, HD-N and messages. */
void              tessera_window_open_conversation (TesseraWindow *self,
                                                  gint64          conversation_id);
gboolean          tessera_window_is_answering    (TesseraWindow  *self);
/* The history could not be opened: the list says so, and a toast. */
void              tessera_window_set_history_error (TesseraWindow *self,
                                                  const char     *message);
/* A toast that says what happened and what to do. */
void              tessera_window_show_error      (TesseraWindow  *self,
                                                  const char     *message);
/* The last error shown to the user, or NULL. For tests. */
const char       *tessera_window_get_last_error  (TesseraWindow  *self);

G_END_DECLS
