/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history-message.h — one message of a conversation, as read from
 * the history: a snapshot, not updated afterwards.
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

typedef enum {
  TESSERA_HISTORY_ROLE_USER,
  TESSERA_HISTORY_ROLE_ASSISTANT,
} TesseraHistoryRole;

#define TESSERA_TYPE_HISTORY_ROLE (tessera_history_role_get_type ())
GType tessera_history_role_get_type (void) G_GNUC_CONST;

#define TESSERA_TYPE_HISTORY_MESSAGE (tessera_history_message_get_type ())
G_DECLARE_FINAL_TYPE (TesseraHistoryMessage, tessera_history_message,
                      TESSERA, HISTORY_MESSAGE, GObject)

gint64             tessera_history_message_get_id              (TesseraHistoryMessage *self);
gint64             tessera_history_message_get_conversation_id (TesseraHistoryMessage *self);
TesseraHistoryRole tessera_history_message_get_role            (TesseraHistoryMessage *self);
const char        *tessera_history_message_get_text            (TesseraHistoryMessage *self);
/* Microseconds since 1970. */
gint64             tessera_history_message_get_created         (TesseraHistoryMessage *self);
/* The HD-N the question was asked with; 0 if none was given. */
int                tessera_history_message_get_hd_num          (TesseraHistoryMessage *self);
/* Timings of an answer; zero when not measured. */
int                tessera_history_message_get_n_tokens        (TesseraHistoryMessage *self);
double             tessera_history_message_get_prefill_speed   (TesseraHistoryMessage *self);
double             tessera_history_message_get_decode_speed    (TesseraHistoryMessage *self);
/* The person stopped the answer before its end. */
gboolean           tessera_history_message_get_stopped         (TesseraHistoryMessage *self);
/* FALSE for an answer still streaming, or one whose writer quit before
 * finishing it (the text is what was saved last). */
gboolean           tessera_history_message_get_finished        (TesseraHistoryMessage *self);

G_END_DECLS
