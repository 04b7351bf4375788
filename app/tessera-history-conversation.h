/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history-conversation.h — one conversation of the history, as a
 * list item.
 *
 * Items come from TesseraHistory and reflect the database: their
 * properties are read-only, and the history updates them (with
 * notifications) when it changes a conversation, so a list row can bind
 * to them.
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

#define TESSERA_TYPE_HISTORY_CONVERSATION (tessera_history_conversation_get_type ())
G_DECLARE_FINAL_TYPE (TesseraHistoryConversation, tessera_history_conversation,
                      TESSERA, HISTORY_CONVERSATION, GObject)

gint64      tessera_history_conversation_get_id             (TesseraHistoryConversation *self);
/* The person's title or the shortened first question; "" before the first
 * question. */
const char *tessera_history_conversation_get_title          (TesseraHistoryConversation *self);
/* Microseconds since 1970 (g_get_real_time()). */
gint64      tessera_history_conversation_get_created        (TesseraHistoryConversation *self);
gint64      tessera_history_conversation_get_updated        (TesseraHistoryConversation *self);
int         tessera_history_conversation_get_hd_num         (TesseraHistoryConversation *self);
/* The model file's name and size in bytes; NULL and 0 if unknown. */
const char *tessera_history_conversation_get_model_name     (TesseraHistoryConversation *self);
gint64      tessera_history_conversation_get_model_size     (TesseraHistoryConversation *self);
/* NULL for a conversation without an image. */
const char *tessera_history_conversation_get_image_sha256   (TesseraHistoryConversation *self);
/* The original file name, for display. */
const char *tessera_history_conversation_get_image_name     (TesseraHistoryConversation *self);
/* As displayed: after the EXIF orientation. */
int         tessera_history_conversation_get_image_width    (TesseraHistoryConversation *self);
int         tessera_history_conversation_get_image_height   (TesseraHistoryConversation *self);
/* The size of the image file in bytes. */
gint64      tessera_history_conversation_get_image_size     (TesseraHistoryConversation *self);
/* Absolute paths of the stored copy and of the thumbnail. */
const char *tessera_history_conversation_get_image_path     (TesseraHistoryConversation *self);
const char *tessera_history_conversation_get_thumbnail_path (TesseraHistoryConversation *self);

G_END_DECLS
