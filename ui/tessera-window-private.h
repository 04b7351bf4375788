/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-window-private.h — the window's state, shared by its parts:
 * tessera-window.c (the image: open, decode, overlay, zoom) and
 * tessera-window-chat.c (conversations: ask, stream, stop, history).
 */
#pragma once

#include "tessera-chat-view.h"
#include "tessera-history.h"
#include "tessera-window.h"
#include "tessera-worker.h"

G_BEGIN_DECLS

struct _TesseraWindow
{
  AdwApplicationWindow parent_instance;

  /* Template children. */
  AdwToastOverlay  *toast_overlay;
  AdwWindowTitle   *window_title;
  GtkMenuButton    *hd_button;
  GtkSpinButton    *hd_spin;
  GtkStack         *stack;
  GtkSpinner       *spinner;
  GtkLabel         *loading_label;
  TesseraImageView *image_view;
  GtkLabel         *status_label;
  GtkWidget        *status_bar;
  GtkButton        *zoom_label_button;
  AdwFlap          *flap;
  GtkBox           *sidebar_box;
  GtkPaned         *paned;
  TesseraChatView  *chat_view;

  GSettings        *settings;
  GCancellable     *load_cancellable;
  char             *last_error;
  char             *page_before_load;

  /* Services the application shares between windows; may be NULL. */
  TesseraWorker    *worker;
  TesseraHistory   *history;
  GtkWidget        *sidebar;

  /* The image shown: where it came from, for the history's copy. */
  GFile            *image_file;
  GBytes           *image_bytes;      /* a pasted image's encoded bytes */
  char             *image_name;
  char             *image_key;        /* SHA-256 naming the image for the embedding cache, or NULL */

  /* The conversation shown: 0 until its first question is saved. */
  gint64            conversation_id;
  gint64            restoring_id;     /* the image being loaded belongs to this conversation */
  char             *restoring_key;    /* and has this SHA-256 */
  GPtrArray        *turns;            /* char* question, answer, question, answer… */
  struct Asking    *asking;           /* the question being answered, or NULL */
};

void _tessera_window_show_error        (TesseraWindow *self,
                                        const char    *message);
void _tessera_window_show_toast        (TesseraWindow *self,
                                        AdwToast      *toast);

/* tessera-window-chat.c */
void _tessera_window_chat_init         (TesseraWindow *self);
void _tessera_window_chat_dispose      (TesseraWindow *self);
void _tessera_window_chat_class_init   (GtkWidgetClass *widget_class);
/* A new image is shown: a new conversation starts, unless the image is
 * that of the conversation being opened. */
void _tessera_window_image_changed     (TesseraWindow *self);

G_END_DECLS
