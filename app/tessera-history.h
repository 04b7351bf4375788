/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history.h — the conversation history, kept in SQLite.
 *
 * Where
 *   The database is $XDG_DATA_HOME/tessera/history.db unless the caller
 *   names another file. Beside it live images/<sha256>.<ext>, a copy of the
 *   bytes of every image asked about (stored once per content, so moving or
 *   deleting the original loses nothing), and thumbnails/<sha256>.png.
 *
 * Durability
 *   Every write is one transaction. A write that returns TRUE is committed
 *   and survives the process being killed; answers in the middle of
 *   streaming are committed without waiting for the disk, everything else
 *   waits for it. A write that fails leaves what was committed before as it
 *   was.
 *
 * Threading
 *   A TesseraHistory, and the objects it returns, belong to the thread that
 *   created it: call it from that thread only (in the app, the main
 *   thread). Another thread that wants to read or write opens its own
 *   TesseraHistory on the same file; SQLite's WAL mode lets one writer and
 *   any number of readers work at once, and writers wait for each other
 *   up to the busy timeout. An instance sees its own writes in its
 *   conversation list at once and other instances' writes after
 *   tessera_history_refresh().
 *
 * Deleting
 *   tessera_history_delete_conversation() only marks a conversation
 *   deleted: it leaves the list and search, and
 *   tessera_history_undelete_conversation() brings it back (the "Undo"
 *   of a toast). tessera_history_purge() removes marked conversations for
 *   good, with their messages and any images no other conversation uses;
 *   the app calls it at startup.
 *
 * Errors
 *   Every fallible call takes a GError. Failures of the database come in
 *   the TESSERA_HISTORY_ERROR domain with a translated message that says
 *   what happened and what to do; decoding an image may fail in
 *   TESSERA_IMAGE_ERROR, and exports in G_IO_ERROR.
 */
#pragma once

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <gio/gio.h>

#include "tessera-history-conversation.h"
#include "tessera-history-message.h"

G_BEGIN_DECLS

#define TESSERA_HISTORY_ERROR (tessera_history_error_quark ())

typedef enum {
  TESSERA_HISTORY_ERROR_FAILED,      /* anything not listed below */
  TESSERA_HISTORY_ERROR_READ_ONLY,   /* the file or its folder cannot be written, or opened read-only */
  TESSERA_HISTORY_ERROR_LOCKED,      /* another program held the database past the busy timeout */
  TESSERA_HISTORY_ERROR_CORRUPT,     /* not a Tessera history, or damaged */
  TESSERA_HISTORY_ERROR_DISK_FULL,   /* no space left for the database or the image copies */
  TESSERA_HISTORY_ERROR_TOO_NEW,     /* written by a newer Tessera with a schema this one lacks */
  TESSERA_HISTORY_ERROR_IO,          /* the disk failed to read or write */
  TESSERA_HISTORY_ERROR_NOT_FOUND,   /* no such conversation or message (or it is deleted) */
  TESSERA_HISTORY_ERROR_INVALID,     /* an argument a person typed is unusable (an empty title) */
} TesseraHistoryError;

typedef enum {
  TESSERA_HISTORY_FLAGS_NONE      = 0,
  /* Read, search and export only; every write fails with READ_ONLY. */
  TESSERA_HISTORY_FLAGS_READ_ONLY = 1 << 0,
} TesseraHistoryFlags;

/* The schema version this build writes (PRAGMA user_version). */
#define TESSERA_HISTORY_SCHEMA_VERSION 3

/* How long a write waits for another program's write to end, unless the
 * "busy-timeout" property says otherwise. */
#define TESSERA_HISTORY_BUSY_TIMEOUT_MS 5000

/* What the engine measured for one answer. Zero means "not measured". */
typedef struct {
  int    n_tokens;        /* tokens generated */
  double prefill_speed;   /* prompt tokens read per second */
  double decode_speed;    /* answer tokens generated per second */
} TesseraHistoryTimings;

/* One search result: the best matching message of a conversation. */
typedef struct {
  gint64 conversation_id;
  gint64 message_id;
  char  *snippet;         /* plain text around the match, "…" where cut */
  char  *snippet_markup;  /* the same as Pango markup, matches in <b> */
} TesseraHistoryHit;

#define TESSERA_TYPE_HISTORY_HIT (tessera_history_hit_get_type ())
GType              tessera_history_hit_get_type (void) G_GNUC_CONST;
TesseraHistoryHit *tessera_history_hit_copy     (const TesseraHistoryHit *hit);
void               tessera_history_hit_free     (TesseraHistoryHit       *hit);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TesseraHistoryHit, tessera_history_hit_free)

#define TESSERA_TYPE_HISTORY (tessera_history_get_type ())
G_DECLARE_FINAL_TYPE (TesseraHistory, tessera_history, TESSERA, HISTORY, GObject)

GQuark          tessera_history_error_quark (void);

/* Opens the history at path (NULL: the default location), creating it and
 * its folder if needed and bringing an older schema up to date, one
 * migration per transaction. A GInitable: g_initable_new() with the
 * properties "path", "flags" and "busy-timeout" (milliseconds) does the
 * same with a different timeout. */
TesseraHistory *tessera_history_new                (const char           *path,
                                                    TesseraHistoryFlags   flags,
                                                    GError              **error);

/* The default database file: $XDG_DATA_HOME/tessera/history.db. */
char           *tessera_history_dup_default_path   (void);
const char     *tessera_history_get_path           (TesseraHistory       *self);
gboolean        tessera_history_is_read_only       (TesseraHistory       *self);

/* Conversations that are not deleted, newest activity first, as
 * TesseraHistoryConversation items. Kept up to date by this instance's
 * writes; transfer none. */
GListModel     *tessera_history_get_conversations  (TesseraHistory       *self);
/* Transfer none; NULL if there is no such conversation in the list. */
TesseraHistoryConversation *
                tessera_history_lookup_conversation (TesseraHistory      *self,
                                                     gint64               id);
/* Reloads the list if another connection changed the database since
 * (SQLite's data_version): the list's items are replaced in one
 * items-changed, reusing the objects of conversations still there. */
gboolean        tessera_history_refresh            (TesseraHistory       *self,
                                                    GError              **error);

/* Starts a conversation about an image: image_bytes are the file's bytes
 * (copied to images/ unless the same content is there already),
 * image_name its file name for display. pixbuf, if not NULL, is the image
 * already decoded with its orientation applied and saves decoding it again
 * for the thumbnail. image_bytes NULL starts a conversation without an
 * image. model_name and model_size say which model file answered (NULL, 0
 * if unknown). The title stays empty until the first question is
 * appended. Blocking (writes files). Transfer full. */
TesseraHistoryConversation *
                tessera_history_add_conversation   (TesseraHistory       *self,
                                                    GBytes               *image_bytes,
                                                    const char           *image_name,
                                                    GdkPixbuf            *pixbuf,
                                                    int                   hd_num,
                                                    const char           *model_name,
                                                    gint64                model_size,
                                                    GError              **error);
/* The same, reading the image from a file. */
TesseraHistoryConversation *
                tessera_history_add_conversation_for_file (TesseraHistory *self,
                                                    GFile                *image,
                                                    GdkPixbuf            *pixbuf,
                                                    int                   hd_num,
                                                    const char           *model_name,
                                                    gint64                model_size,
                                                    GCancellable         *cancellable,
                                                    GError              **error);

/* Appends a message and returns its id (0 on failure). A user message is
 * complete; an assistant message starts as streaming: update its text with
 * tessera_history_update_message_text() and end it with
 * tessera_history_finish_message(). hd_num > 0 also becomes the
 * conversation's HD-N; the first user message gives an untitled
 * conversation its title. */
gint64          tessera_history_append_message     (TesseraHistory       *self,
                                                    gint64                conversation_id,
                                                    TesseraHistoryRole    role,
                                                    const char           *text,
                                                    int                   hd_num,
                                                    GError              **error);
/* Replaces the text of a streaming answer. Cheap enough to call every
 * second while an answer streams; does not wait for the disk. */
gboolean        tessera_history_update_message_text (TesseraHistory      *self,
                                                    gint64                message_id,
                                                    const char           *text,
                                                    GError              **error);
/* The final text, the timings (may be NULL), and whether the person stopped
 * the answer before its end. */
gboolean        tessera_history_finish_message     (TesseraHistory       *self,
                                                    gint64                message_id,
                                                    const char           *text,
                                                    const TesseraHistoryTimings *timings,
                                                    gboolean              stopped,
                                                    GError              **error);
/* The messages of a conversation, oldest first: a GPtrArray of
 * TesseraHistoryMessage, transfer full. */
GPtrArray      *tessera_history_list_messages      (TesseraHistory       *self,
                                                    gint64                conversation_id,
                                                    GError              **error);

gboolean        tessera_history_rename_conversation (TesseraHistory      *self,
                                                    gint64                conversation_id,
                                                    const char           *title,
                                                    GError              **error);
gboolean        tessera_history_delete_conversation (TesseraHistory      *self,
                                                    gint64                conversation_id,
                                                    GError              **error);
gboolean        tessera_history_undelete_conversation (TesseraHistory    *self,
                                                    gint64                conversation_id,
                                                    GError              **error);
/* Removes conversations deleted at least min_age ago (0: all of them) and
 * the images and thumbnails nothing refers to any more. */
gboolean        tessera_history_purge              (TesseraHistory       *self,
                                                    GTimeSpan             min_age,
                                                    GError              **error);

/* Full-text search over every message of the conversations that are not
 * deleted. The words of query are matched as they are typed — quotes,
 * operators and brackets are plain text — ignoring case and accents;
 * each word also matches the beginning of longer words, and Chinese,
 * Japanese and Korean text matches anywhere inside words. At most limit
 * conversations, best match first: a GPtrArray of TesseraHistoryHit,
 * transfer full; empty for a query without words. */
GPtrArray      *tessera_history_search             (TesseraHistory       *self,
                                                    const char           *query,
                                                    guint                 limit,
                                                    GError              **error);

/* Writes a conversation as Markdown to file, with a copy of its image
 * (STEM-image.EXT) and the image with its HD-N tile grid drawn over it
 * (STEM-tiles.png) beside it, STEM being file's name without ".md".
 * Blocking: decodes the image. */
gboolean        tessera_history_export_markdown    (TesseraHistory       *self,
                                                    gint64                conversation_id,
                                                    GFile                *file,
                                                    GError              **error);
/* Writes a conversation and its messages as one JSON object. */
gboolean        tessera_history_export_json        (TesseraHistory       *self,
                                                    gint64                conversation_id,
                                                    GFile                *file,
                                                    GError              **error);

/* PRAGMA integrity_check and the search index's own check: TRUE if both
 * find nothing wrong, otherwise a CORRUPT error naming the first problem.
 * Reads the whole file; not for every startup. */
gboolean        tessera_history_verify             (TesseraHistory       *self,
                                                    GError              **error);

G_END_DECLS
