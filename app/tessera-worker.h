/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-worker.h — the thread that owns the model.
 *
 * One TesseraWorker per application: the model file is mapped once, and
 * every window's questions go to the same thread through a queue, one at a
 * time. The worker keeps one chat session; a question about another
 * conversation (or the same one at another HD-N or system prompt) resets
 * it and restores that conversation's earlier turns, which the next
 * prefill reads again. Image embeddings are kept for the last few
 * (image, HD-N) pairs, so switching back and forth between conversations
 * does not encode an image again.
 *
 * Everything a request reports — progress, answer text, the end — reaches
 * the main loop through at most one pending idle source per request: the
 * engine may report a thousand times a second, the window wants the latest
 * state a frame at a time. Callbacks run in the global default main
 * context, in order, and the last one for a request is always its
 * GAsyncReadyCallback.
 *
 * Cancelling a request's GCancellable stops it between layers or tokens;
 * the answer so far is returned with `stopped` set (not as an error), and
 * the session stays usable.
 */
#pragma once

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <gio/gio.h>

#include "tessera-engine.h"

G_BEGIN_DECLS

#define TESSERA_WORKER_ERROR (tessera_worker_error_quark ())

typedef enum {
  TESSERA_WORKER_ERROR_NO_MODEL,     /* no model loaded: choose one in Preferences */
  TESSERA_WORKER_ERROR_BAD_MODEL,    /* the file is not a model Tessera can chat with */
  TESSERA_WORKER_ERROR_ENGINE,       /* the engine failed (out of memory, prompt too long, …) */
} TesseraWorkerError;

typedef enum {
  TESSERA_WORKER_EMPTY,              /* no model */
  TESSERA_WORKER_LOADING,
  TESSERA_WORKER_READY,
  TESSERA_WORKER_FAILED,             /* the last load failed; "error" says why */
} TesseraWorkerState;

typedef enum {
  TESSERA_WORK_WAITING,              /* queued behind another request */
  TESSERA_WORK_ENCODING,             /* done/total: views (the global view is view 0) */
  TESSERA_WORK_READING,              /* done/total: prompt rows */
  TESSERA_WORK_ANSWERING,            /* done: tokens, total: the most allowed */
} TesseraWorkStage;

typedef struct {
  TesseraWorkStage stage;
  int              done, total;
  double           rate;             /* units of the stage a second, measured; 0 if not yet */
  double           seconds_left;     /* of the whole request, estimated; < 0 if unknown */
  int              batch;            /* ENCODING: views being encoded now, from `done` on */
} TesseraWorkProgress;

/* One earlier turn of a conversation. */
typedef struct {
  const char *question;              /* as the person typed it */
  const char *answer;
} TesseraWorkerTurn;

typedef struct {
  gint64                   conversation_id;  /* the session's identity; 0: a new one each time */
  /* The conversation's image, or none: it is read with the first
   * question of the conversation. Either decoded pixels (the worker thread
   * turns them into RGB8, so the window does not wait), or RGB8 bytes with
   * rows `stride` bytes apart. image_key names the content (a SHA-256) for
   * the embedding cache; NULL: the worker hashes the pixels. */
  GdkPixbuf               *pixbuf;
  GBytes                  *image_rgb;
  int                      width, height, stride;
  const char              *image_key;
  int                      hd_num;
  const TesseraWorkerTurn *history;          /* turns before this question, oldest first */
  int                      n_history;
  const char              *question;
  const char              *system_prompt;    /* NULL or "": the model's own */
  TsrGenParams             params;
} TesseraWorkerRequest;

typedef struct {
  char          *text;                       /* the answer (so far, if stopped) */
  gboolean       stopped;                    /* the person stopped it */
  TsrChatStop    stop;                       /* why it ended otherwise */
  TsrChatTimings timings;
  int            n_tokens;
} TesseraWorkerAnswer;

void tessera_worker_answer_free (TesseraWorkerAnswer *answer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TesseraWorkerAnswer, tessera_worker_answer_free)

typedef void (*TesseraWorkerProgressFunc) (const TesseraWorkProgress *progress, gpointer user_data);
/* `text` is the whole answer so far (not a piece): a UI can show it as is. */
typedef void (*TesseraWorkerTextFunc)     (const char *text, gpointer user_data);

#define TESSERA_TYPE_WORKER (tessera_worker_get_type ())
G_DECLARE_FINAL_TYPE (TesseraWorker, tessera_worker, TESSERA, WORKER, GObject)

GQuark              tessera_worker_error_quark (void);

TesseraWorker      *tessera_worker_new          (void);

/* Maps the model file and makes it ready on the worker thread; the
 * "state" property follows (LOADING, then READY or FAILED with "error").
 * NULL or "" unloads. n_threads 0: one per physical core. */
void                tessera_worker_load_model   (TesseraWorker *self,
                                                 const char    *path,
                                                 int            n_threads);
TesseraWorkerState  tessera_worker_get_state    (TesseraWorker *self);
/* TRUE while jobs are queued or running on the worker thread, whatever
 * the main loop has been told yet. Any thread may ask. */
gboolean            tessera_worker_is_busy      (TesseraWorker *self);
/* Why the last load failed (FAILED), else NULL. */
const char         *tessera_worker_get_error    (TesseraWorker *self);
const char         *tessera_worker_get_model_path (TesseraWorker *self);
/* What the file calls itself, for display and the history. */
const char         *tessera_worker_get_model_name (TesseraWorker *self);
gint64              tessera_worker_get_model_size (TesseraWorker *self);

/* Queues a question. The request's data is copied. progress and text may be
 * NULL; callback gets the answer with tessera_worker_ask_finish(). */
void                tessera_worker_ask          (TesseraWorker              *self,
                                                 const TesseraWorkerRequest *request,
                                                 GCancellable               *cancellable,
                                                 TesseraWorkerProgressFunc   progress,
                                                 TesseraWorkerTextFunc       text,
                                                 gpointer                    user_data,
                                                 GAsyncReadyCallback         callback,
                                                 gpointer                    callback_data);
TesseraWorkerAnswer *tessera_worker_ask_finish  (TesseraWorker              *self,
                                                 GAsyncResult               *result,
                                                 GError                    **error);

G_END_DECLS
