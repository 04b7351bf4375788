/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-chat-view.h — the chat pane: the conversation's messages, the
 * answer as it streams in, what the engine is doing, and the question
 * entry with its Send/Stop button.
 *
 * It knows nothing of the engine: the window tells it what to show and
 * listens to "send" (the question typed, trimmed) and "stop".
 */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

typedef enum {
  TESSERA_CHAT_NO_MODEL,
  TESSERA_CHAT_LOADING_MODEL,
  TESSERA_CHAT_MODEL_FAILED,
  TESSERA_CHAT_READY,
} TesseraChatState;

#define TESSERA_TYPE_CHAT_VIEW (tessera_chat_view_get_type ())
G_DECLARE_FINAL_TYPE (TesseraChatView, tessera_chat_view, TESSERA, CHAT_VIEW, GtkWidget)

GtkWidget  *tessera_chat_view_new             (void);

/* message: why the model failed (MODEL_FAILED), else ignored. */
void        tessera_chat_view_set_state       (TesseraChatView *self,
                                               TesseraChatState state,
                                               const char      *message);
TesseraChatState tessera_chat_view_get_state  (TesseraChatView *self);

/* Removes every message (a new or another conversation). */
void        tessera_chat_view_clear           (TesseraChatView *self);
void        tessera_chat_view_add_question    (TesseraChatView *self,
                                               const char      *text);
/* A finished answer; footer is a dim line under it (timings), may be NULL. */
void        tessera_chat_view_add_answer      (TesseraChatView *self,
                                               const char      *text,
                                               const char      *footer,
                                               gboolean         stopped);

/* The streaming answer: begin, update with the whole text so far, end. */
void        tessera_chat_view_begin_answer    (TesseraChatView *self);
void        tessera_chat_view_update_answer   (TesseraChatView *self,
                                               const char      *text);
void        tessera_chat_view_end_answer      (TesseraChatView *self,
                                               const char      *text,
                                               const char      *footer,
                                               gboolean         stopped);

/* While busy the Send button is a Stop button and Escape stops. */
void        tessera_chat_view_set_busy        (TesseraChatView *self,
                                               gboolean         busy);
gboolean    tessera_chat_view_get_busy        (TesseraChatView *self);

/* text NULL hides the progress; fraction < 0 pulses; detail is the dim
 * right-hand part (speed, time left), may be NULL. */
void        tessera_chat_view_set_progress    (TesseraChatView *self,
                                               const char      *text,
                                               const char      *detail,
                                               double           fraction);

void        tessera_chat_view_set_entry_text  (TesseraChatView *self,
                                               const char      *text);
char       *tessera_chat_view_dup_entry_text  (TesseraChatView *self);
void        tessera_chat_view_focus_entry     (TesseraChatView *self);
/* Sends what the entry holds, as Enter does. FALSE if there was nothing
 * to send or an answer is running. */
gboolean    tessera_chat_view_send            (TesseraChatView *self);

/* For tests and the window's title: the messages shown. */
guint       tessera_chat_view_get_n_messages  (TesseraChatView *self);
/* The plain text of message i (as rendered), transfer full. */
char       *tessera_chat_view_dup_message_text (TesseraChatView *self,
                                               guint            i);
const char *tessera_chat_view_get_progress_text (TesseraChatView *self);

G_END_DECLS
