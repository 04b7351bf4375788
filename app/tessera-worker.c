/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-worker.c — the model's thread: a queue of jobs (load a model,
 * answer a question), one chat session, a small cache of image embeddings,
 * and the coalesced reports back to the main loop.
 */
#define G_LOG_DOMAIN "tessera-worker"

#include "config.h"

#include <string.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "tessera-image-load.h"
#include "tessera-worker.h"

/* Views the encoder runs at once: the window lights up the batch being
 * encoded. `tessera-cli bench vision --type q8_0` on the 2-core AVX2
 * machine: 3366 ms a view in batches of 1, 3032 of 2, 2760 of 4. */
#define ENCODE_BATCH TSR_VISION_BATCH_DEFAULT
/* Embeddings kept for (image, HD-N) pairs: two HD-55 images are ~270 MB. */
#define CACHE_SLOTS 2

typedef enum { JOB_LOAD, JOB_ASK, JOB_QUIT } JobKind;

typedef struct {
  char  *key;
  int    hd_num;
  float *rows;
  int    n_rows;
} CachedImage;

typedef struct Job Job;

struct _TesseraWorker
{
  GObject       parent_instance;

  GThread      *thread;
  GAsyncQueue  *queue;
  GMainContext *context;

  /* Main thread's view of the model. */
  TesseraWorkerState state;
  char         *error;
  gint          quitting;         /* finalizing: no more state updates */
  gint          busy;             /* jobs pushed and not yet done */
  char         *model_path;
  char         *model_name;
  gint64        model_size;

  /* Worker thread only. */
  TsrGguf      *gguf;
  TsrLlm       *llm;
  TsrTokenizer *tok;
  TsrVision    *vision;
  TsrPool      *pool;
  TsrChat      *chat;
  char         *chat_meta;        /* the meta the chat was made with, NULL: default */
  gint64        session_id;       /* conversation the chat holds; 0: none */
  int           session_hd;
  char         *session_image;
  CachedImage   cache[CACHE_SLOTS];
  /* Measured speeds, for estimates before a request has measured its own. */
  double        view_seconds;
  double        prefill_rate;
};

G_DEFINE_FINAL_TYPE (TesseraWorker, tessera_worker, G_TYPE_OBJECT)

enum { PROP_0, PROP_STATE, PROP_ERROR, PROP_MODEL_NAME, N_PROPS };
static GParamSpec *properties[N_PROPS];

G_DEFINE_QUARK (tessera-worker-error-quark, tessera_worker_error)

struct Job
{
  JobKind        kind;
  gatomicrefcount ref;
  TesseraWorker *worker;          /* not a reference: the worker outlives its jobs */

  /* JOB_LOAD */
  char          *path;
  int            n_threads;

  /* JOB_ASK: the request, copied. */
  gint64         conversation_id;
  GdkPixbuf     *pixbuf;
  GBytes        *image_rgb;
  int            width, height, stride;
  char          *image_key;
  int            hd_num;
  char         **questions, **answers;
  int            n_history;
  char          *question;
  char          *meta;
  TsrGenParams   params;
  GTask         *task;
  GCancellable  *cancellable;
  TesseraWorkerProgressFunc progress_cb;
  TesseraWorkerTextFunc     text_cb;
  gpointer       user_data;

  /* Written by the worker thread, read by the main loop, under lock. */
  GMutex         lock;
  TesseraWorkProgress progress;
  gboolean       progress_dirty;
  GString       *text;
  gboolean       text_dirty;
  gboolean       idle_pending;
  gint64         last_dispatch;   /* monotonic µs */
  gboolean       done;
  TesseraWorkerAnswer *answer;
  GError        *error;

  /* Worker thread only: timing of the current stage. */
  TesseraWorkStage stage;
  gint64         stage_start;
  int            stage_first_done;
  int            image_rows;      /* rows the image adds, for the estimate while encoding */
};

static Job *
job_ref (Job *job)
{
  g_atomic_ref_count_inc (&job->ref);
  return job;
}

static void
job_unref (Job *job)
{
  if (!g_atomic_ref_count_dec (&job->ref))
    return;
  g_free (job->path);
  g_clear_pointer (&job->image_rgb, g_bytes_unref);
  g_clear_object (&job->pixbuf);
  g_free (job->image_key);
  g_strfreev (job->questions);
  g_strfreev (job->answers);
  g_free (job->question);
  g_free (job->meta);
  g_clear_object (&job->task);
  g_clear_object (&job->cancellable);
  g_mutex_clear (&job->lock);
  if (job->text != NULL)
    g_string_free (job->text, TRUE);
  g_clear_pointer (&job->answer, tessera_worker_answer_free);
  g_clear_error (&job->error);
  g_free (job);
}

static Job *
job_new (TesseraWorker *worker, JobKind kind)
{
  Job *job = g_new0 (Job, 1);
  job->kind = kind;
  job->worker = worker;
  g_atomic_ref_count_init (&job->ref);
  g_mutex_init (&job->lock);
  return job;
}

void
tessera_worker_answer_free (TesseraWorkerAnswer *answer)
{
  if (answer == NULL)
    return;
  g_free (answer->text);
  g_free (answer);
}

/* ==== Reports to the main loop ========================================== */

/* Runs in the main context: hands the latest state to the callbacks and,
 * after the last report, completes the task. */
static gboolean
job_dispatch (gpointer data)
{
  Job *job = data;
  TesseraWorkProgress progress;
  gboolean progress_dirty, text_dirty, done;
  char *text = NULL;

  g_mutex_lock (&job->lock);
  progress = job->progress;
  progress_dirty = job->progress_dirty;
  text_dirty = job->text_dirty;
  if (text_dirty)
    text = g_strndup (job->text->str, job->text->len);
  done = job->done;
  job->progress_dirty = job->text_dirty = FALSE;
  job->idle_pending = FALSE;
  job->last_dispatch = g_get_monotonic_time ();
  g_mutex_unlock (&job->lock);

  if (progress_dirty && !done && job->progress_cb != NULL)
    job->progress_cb (&progress, job->user_data);
  if (text_dirty && job->text_cb != NULL)
    job->text_cb (text, job->user_data);
  g_free (text);

  if (done && job->task != NULL)
    {
      GTask *task = g_steal_pointer (&job->task);
      if (job->error != NULL)
        g_task_return_error (task, g_steal_pointer (&job->error));
      else
        g_task_return_pointer (task, g_steal_pointer (&job->answer),
                               (GDestroyNotify) tessera_worker_answer_free);
      g_object_unref (task);
    }
  return G_SOURCE_REMOVE;
}

/* Reports reach the main loop at most this often (µs), the end at once. */
#define REPORT_INTERVAL 40000

/* Called with job->lock held: makes sure one source will look at the job.
 * It runs at default priority, above GTK's drawing, so a window that is
 * slow to draw (software rendering, a big image) still hears from the
 * engine; the interval leaves the frames in between to GTK. */
static void
job_schedule_locked (Job *job)
{
  GSource *source;
  gint64 wait;

  if (job->idle_pending)
    return;
  job->idle_pending = TRUE;
  wait = job->done ? 0 : job->last_dispatch + REPORT_INTERVAL - g_get_monotonic_time ();
  source = wait > 0 ? g_timeout_source_new ((guint) (wait / 1000) + 1) : g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, job_dispatch, job_ref (job), (GDestroyNotify) job_unref);
  g_source_set_static_name (source, "[tessera-worker] report");
  g_source_attach (source, job->worker->context);
  g_source_unref (source);
}

static double
seconds_since (gint64 start)
{
  return (double) (g_get_monotonic_time () - start) / 1e6;
}

/* The estimate of what is left of the whole request, from this stage's
 * measured rate, or from what earlier requests measured. */
static double
estimate_left (Job *job, TesseraWorkStage stage, int done, int total, double rate)
{
  TesseraWorker *w = job->worker;
  double prefill_rate = stage == TESSERA_WORK_READING && rate > 0 ? rate : w->prefill_rate;

  switch (stage)
    {
    case TESSERA_WORK_ENCODING:
      {
        double per_view = rate > 0 ? 1.0 / rate : w->view_seconds;
        if (per_view <= 0)
          return -1;
        /* Before a first answer has measured the prompt's speed, the
         * estimate covers the image alone. The question and the history
         * are small beside the image. */
        return (total - done) * per_view + (prefill_rate > 0 ? (job->image_rows + 64) / prefill_rate : 0);
      }
    case TESSERA_WORK_READING:
      return prefill_rate > 0 ? (total - done) / prefill_rate : -1;
    case TESSERA_WORK_WAITING:
    case TESSERA_WORK_ANSWERING:
    default:
      return -1;
    }
}

static void
job_report (Job *job, TesseraWorkStage stage, int done, int total, int batch)
{
  double rate = 0;

  if (stage != job->stage || job->stage_start == 0)
    {
      job->stage = stage;
      job->stage_start = g_get_monotonic_time ();
      job->stage_first_done = done;
    }
  else if (done > job->stage_first_done)
    rate = (done - job->stage_first_done) / seconds_since (job->stage_start);

  g_mutex_lock (&job->lock);
  job->progress.stage = stage;
  job->progress.done = done;
  job->progress.total = total;
  job->progress.rate = rate;
  job->progress.batch = batch;
  job->progress.seconds_left = estimate_left (job, stage, done, total, rate);
  job->progress_dirty = TRUE;
  job_schedule_locked (job);
  g_mutex_unlock (&job->lock);
}

static void
job_finish (Job *job, TesseraWorkerAnswer *answer, GError *error)
{
  g_mutex_lock (&job->lock);
  job->answer = answer;
  job->error = error;
  job->done = TRUE;
  job_schedule_locked (job);
  g_mutex_unlock (&job->lock);
}

/* ==== Model state, set from the worker thread =========================== */

typedef struct {
  TesseraWorker     *worker;
  TesseraWorkerState state;
  char              *error, *path, *name;
  gint64             size;
} StateUpdate;

static gboolean
apply_state (gpointer data)
{
  StateUpdate *u = data;
  TesseraWorker *self = u->worker;

  g_free (self->error);
  self->error = g_steal_pointer (&u->error);
  g_free (self->model_path);
  self->model_path = g_steal_pointer (&u->path);
  g_free (self->model_name);
  self->model_name = g_steal_pointer (&u->name);
  self->model_size = u->size;
  self->state = u->state;
  g_debug ("model %s: state %d%s%s", self->model_path ? self->model_path : "(none)", self->state,
           self->error ? ": " : "", self->error ? self->error : "");
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MODEL_NAME]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ERROR]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
  g_object_unref (self);
  g_free (u);
  return G_SOURCE_REMOVE;
}

static void
post_state (TesseraWorker *self, TesseraWorkerState state, const char *error, const char *path,
            const char *name, gint64 size)
{
  StateUpdate *u;
  GSource *source;

  if (g_atomic_int_get (&self->quitting))
    return;
  u = g_new0 (StateUpdate, 1);
  u->worker = g_object_ref (self);
  u->state = state;
  u->error = g_strdup (error);
  u->path = g_strdup (path);
  u->name = g_strdup (name);
  u->size = size;
  /* Not g_main_context_invoke(): it would run apply_state on this thread
   * whenever the main thread happens not to hold its context. */
  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, apply_state, u, NULL);
  g_source_set_static_name (source, "[tessera-worker] state");
  g_source_attach (source, self->context);
  g_source_unref (source);
}

/* ==== Worker thread: the model ========================================== */

static void
cache_clear (TesseraWorker *self)
{
  for (int i = 0; i < CACHE_SLOTS; i++)
    {
      g_free (self->cache[i].key);
      g_free (self->cache[i].rows);
      memset (&self->cache[i], 0, sizeof self->cache[i]);
    }
}

static void
unload (TesseraWorker *self)
{
  g_clear_pointer (&self->chat, tsr_chat_free);
  g_clear_pointer (&self->pool, tsr_pool_free);
  g_clear_pointer (&self->vision, tsr_vision_free);
  g_clear_pointer (&self->tok, tsr_tokenizer_free);
  g_clear_pointer (&self->llm, tsr_llm_free);
  g_clear_pointer (&self->gguf, tsr_gguf_close);
  g_clear_pointer (&self->chat_meta, g_free);
  g_clear_pointer (&self->session_image, g_free);
  self->session_id = 0;
  cache_clear (self);
}

/* The chat session for this system prompt, made anew if it changed. */
static TsrStatus
ensure_chat (TesseraWorker *self, const char *meta, TsrError *err)
{
  TsrChatConfig config;
  TsrStatus st;

  if (self->chat != NULL && g_strcmp0 (meta, self->chat_meta) == 0)
    return TSR_OK;
  g_clear_pointer (&self->chat, tsr_chat_free);
  self->session_id = 0;
  tsr_chat_config_init (&config);
  config.meta = meta;
  /* f32 keys and values: exact to the reference; the cache is allocated
   * untouched, so memory grows with the conversation, not the limit. */
  config.kv_type = TSR_DTYPE_F32;
  config.vision = self->vision;
  st = tsr_chat_new (self->llm, self->tok, self->pool, &config, &self->chat, err);
  if (st == TSR_OK)
    {
      g_free (self->chat_meta);
      self->chat_meta = g_strdup (meta);
    }
  return st;
}

/* The engine's messages do not all end a sentence; ours go on after them. */
static const char *
sentence_end (const char *message)
{
  size_t n = strlen (message);
  return n > 0 && strchr (".!?", message[n - 1]) != NULL ? "" : ".";
}

static void
run_load (TesseraWorker *self, Job *job)
{
  TsrError err;
  TsrGgufModelInfo info;
  g_autofree char *name = NULL;
  g_autofree char *message = NULL;
  GStatBuf st;

  unload (self);
  if (job->path == NULL || job->path[0] == '\0')
    {
      post_state (self, TESSERA_WORKER_EMPTY, NULL, NULL, NULL, 0);
      return;
    }
  post_state (self, TESSERA_WORKER_LOADING, NULL, job->path, NULL, 0);

  name = g_path_get_basename (job->path);
  err.message[0] = '\0';
  if (tsr_gguf_open (job->path, &self->gguf, &err) != TSR_OK)
    message = g_strdup_printf (_("“%s” could not be opened as a model: %s%s Choose the file that "
                                 "tessera-cli convert wrote."), name, err.message, sentence_end (err.message));
  else if (tsr_gguf_model_info (self->gguf, &info, &err) != TSR_OK)
    message = g_strdup_printf (_("“%s” is not a model Tessera can run: %s%s"), name, err.message,
                               sentence_end (err.message));
  else if (info.arch != TSR_ARCH_INTERNLM2_4KHD)
    message = g_strdup_printf (_("“%s” is a language model without eyes: Tessera needs "
                                 "InternLM-XComposer2-4KHD. Convert that model with tessera-cli convert."),
                               name);
  else if (info.synthetic)
    message = g_strdup_printf (_("“%s” is a benchmark model with random weights: it cannot answer "
                                 "questions. Choose a converted InternLM-XComposer2-4KHD model."), name);
  else if (tsr_llm_load (self->gguf, &self->llm, &err) != TSR_OK ||
           tsr_tokenizer_from_gguf (self->gguf, &self->tok, &err) != TSR_OK ||
           tsr_vision_new (self->gguf, &self->vision, &err) != TSR_OK)
    message = g_strdup_printf (_("“%s” could not be loaded: %s%s"), name, err.message, sentence_end (err.message));
  else if (tsr_pool_new (job->n_threads, &self->pool, &err) != TSR_OK ||
           ensure_chat (self, NULL, &err) != TSR_OK)
    message = g_strdup_printf (_("The model could not be made ready: %s"), err.message);

  if (message != NULL)
    {
      unload (self);
      post_state (self, TESSERA_WORKER_FAILED, message, job->path, NULL, 0);
      return;
    }
  if (g_stat (job->path, &st) != 0)
    st.st_size = 0;
  post_state (self, TESSERA_WORKER_READY, NULL, job->path, name, (gint64) st.st_size);
}

/* ---- Answering --------------------------------------------------------- */

static int
job_should_abort (void *user_data)
{
  Job *job = user_data;
  return g_cancellable_is_cancelled (job->cancellable);
}

static void
vision_progress (const char *stage, int done, int total, void *user_data)
{
  (void) stage;
  job_report (user_data, TESSERA_WORK_ENCODING, done, total, MIN (ENCODE_BATCH, total - done));
}

static void
chat_progress (const char *stage, int done, int total, void *user_data)
{
  Job *job = user_data;
  if (g_str_equal (stage, "prefill"))
    job_report (job, TESSERA_WORK_READING, done, total, 0);
  else if (g_str_equal (stage, "generate"))
    job_report (job, TESSERA_WORK_ANSWERING, done, total, 0);
}

static void
chat_token (int32_t id, const char *text, size_t len, void *user_data)
{
  Job *job = user_data;
  (void) id;
  if (len == 0)
    return;
  g_mutex_lock (&job->lock);
  g_string_append_len (job->text, text, (gssize) len);
  job->text_dirty = TRUE;
  job_schedule_locked (job);
  g_mutex_unlock (&job->lock);
}

/* The image's rows at the job's HD-N, from the cache or the encoder. The
 * returned rows belong to the cache. */
static TsrStatus
image_rows (TesseraWorker *self, Job *job, const float **rows, int *n_rows, TsrError *err)
{
  TsrHdPlan plan;
  TsrVisionParams vp;
  TsrStatus st;
  float *out;
  size_t count;
  int slot = CACHE_SLOTS - 1;
  gint64 t0;

  for (int i = 0; i < CACHE_SLOTS; i++)
    if (self->cache[i].rows != NULL && self->cache[i].hd_num == job->hd_num &&
        g_strcmp0 (self->cache[i].key, job->image_key) == 0)
      {
        *rows = self->cache[i].rows;
        *n_rows = self->cache[i].n_rows;
        return TSR_OK;
      }

  if ((st = tsr_hd_plan (job->width, job->height, job->hd_num, &plan, err)) != TSR_OK)
    return st;
  job->image_rows = plan.tokens;
  count = (size_t) plan.tokens * (size_t) tsr_vision_info (self->vision)->n_out;
  out = g_try_malloc (count * sizeof *out);
  if (out == NULL)
    {
      err->status = TSR_ENOMEM;
      g_snprintf (err->message, sizeof err->message,
                  _("There is not enough memory for the image’s %d tokens. Choose a smaller tile budget."),
                  plan.tokens);
      return TSR_ENOMEM;
    }
  tsr_vision_params_init (&vp);
  vp.hd_num = job->hd_num;
  vp.batch = ENCODE_BATCH;
  vp.progress = vision_progress;
  vp.should_abort = job_should_abort;
  vp.user_data = job;
  t0 = g_get_monotonic_time ();
  st = tsr_vision_encode (self->vision, self->pool, g_bytes_get_data (job->image_rgb, NULL), job->width,
                          job->height, (size_t) job->stride, &vp, out, count, NULL, err);
  if (st != TSR_OK)
    {
      g_free (out);
      return st;
    }
  self->view_seconds = seconds_since (t0) / (plan.tiles + 1);

  /* The oldest slot goes. */
  g_free (self->cache[slot].key);
  g_free (self->cache[slot].rows);
  memmove (&self->cache[1], &self->cache[0], (CACHE_SLOTS - 1) * sizeof self->cache[0]);
  self->cache[0].key = g_strdup (job->image_key);
  self->cache[0].hd_num = job->hd_num;
  self->cache[0].rows = out;
  self->cache[0].n_rows = plan.tokens;
  *rows = out;
  *n_rows = plan.tokens;
  return TSR_OK;
}

/* RGB8 from the pixbuf, and a key from the pixels when none was given:
 * here, not on the main thread, since a 4K image takes a few hundred ms. */
static gboolean
prepare_pixels (Job *job, TsrError *err)
{
  if (job->image_rgb == NULL)
    {
      g_autoptr(GError) error = NULL;
      gsize size;
      guint8 *rgb = tessera_image_to_rgb8 (job->pixbuf, &size, &error);
      if (rgb == NULL)
        {
          err->status = TSR_ENOMEM;
          g_strlcpy (err->message, error->message, sizeof err->message);
          return FALSE;
        }
      job->image_rgb = g_bytes_new_take (rgb, size);
      job->width = gdk_pixbuf_get_width (job->pixbuf);
      job->height = gdk_pixbuf_get_height (job->pixbuf);
      job->stride = job->width * 3;
    }
  if (job->image_key == NULL || job->image_key[0] == '\0')
    {
      g_free (job->image_key);
      job->image_key = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, job->image_rgb);
    }
  return TRUE;
}

static GError *
engine_error (const TsrError *err)
{
  return g_error_new (TESSERA_WORKER_ERROR, TESSERA_WORKER_ERROR_ENGINE, "%s", err->message);
}

static void
run_ask (TesseraWorker *self, Job *job)
{
  TsrError err;
  TsrChatCallbacks cb = { 0 };
  TsrChatAnswer answer = { 0 };
  TsrChatImage image = { 0 };
  TsrStatus st;
  TesseraWorkerAnswer *result;
  g_autofree char *first = NULL;
  const char *meta = job->meta != NULL && job->meta[0] != '\0' ? job->meta : NULL;
  gboolean has_image = job->image_rgb != NULL || job->pixbuf != NULL;
  gboolean same_session;

  if (g_cancellable_is_cancelled (job->cancellable))
    {
      result = g_new0 (TesseraWorkerAnswer, 1);
      result->text = g_strdup ("");
      result->stopped = TRUE;
      job_finish (job, result, NULL);
      return;
    }
  if (self->llm == NULL)
    {
      job_finish (job, NULL, g_error_new (TESSERA_WORKER_ERROR, TESSERA_WORKER_ERROR_NO_MODEL, "%s",
                                          _("No model is loaded. Choose the model file in Preferences.")));
      return;
    }
  if (ensure_chat (self, meta, &err) != TSR_OK)
    {
      job_finish (job, NULL, engine_error (&err));
      return;
    }

  cb.progress = chat_progress;
  cb.should_abort = job_should_abort;
  cb.token = chat_token;
  cb.user_data = job;

  if (has_image && !prepare_pixels (job, &err))
    {
      st = err.status;
      goto failed;
    }
  if (has_image)
    {
      const float *rows;
      int n_rows;
      if ((st = image_rows (self, job, &rows, &n_rows, &err)) != TSR_OK)
        goto failed;
      image.embd = rows;
      image.n_rows = n_rows;
      image.hd_num = job->hd_num;
      image.width = job->width;
      image.height = job->height;
    }

  /* The session already holds this conversation's earlier turns, or it
   * gets them again: the next prefill keeps what the cache shares. */
  same_session = job->conversation_id != 0 && self->session_id == job->conversation_id &&
                 self->session_hd == job->hd_num && g_strcmp0 (self->session_image, job->image_key) == 0 &&
                 tsr_chat_n_turns (self->chat) == job->n_history;
  if (!same_session)
    {
      tsr_chat_reset (self->chat);
      self->session_id = 0;
      for (int i = 0; i < job->n_history; i++)
        {
          gboolean with_image = i == 0 && has_image;
          g_autofree char *q = with_image ? g_strconcat (TSR_CHAT_IMAGE_TAG, job->questions[i], NULL)
                                          : g_strdup (job->questions[i]);
          if ((st = tsr_chat_add_turn (self->chat, q, with_image ? &image : NULL, with_image ? 1 : 0,
                                       job->answers[i], &err)) != TSR_OK)
            goto failed;
        }
      self->session_id = job->conversation_id;
      self->session_hd = job->hd_num;
      g_free (self->session_image);
      self->session_image = g_strdup (job->image_key);
    }

  first = job->n_history == 0 && has_image ? g_strconcat (TSR_CHAT_IMAGE_TAG, job->question, NULL)
                                           : g_strdup (job->question);
  st = tsr_chat_ask (self->chat, first, job->n_history == 0 && has_image ? &image : NULL,
                     job->n_history == 0 && has_image ? 1 : 0, &job->params, &cb, &answer, &err);
  if (st == TSR_ECANCELLED)
    {
      /* The session rolled back; the stopped answer joins it as the
       * history will show it, so the next question prefills only what is
       * new. */
      g_mutex_lock (&job->lock);
      result = g_new0 (TesseraWorkerAnswer, 1);
      result->text = g_strndup (job->text->str, job->text->len);
      g_mutex_unlock (&job->lock);
      result->stopped = TRUE;
      if (tsr_chat_add_turn (self->chat, first, job->n_history == 0 && has_image ? &image : NULL,
                             job->n_history == 0 && has_image ? 1 : 0, result->text, &err) != TSR_OK)
        self->session_id = 0;
      job_finish (job, result, NULL);
      return;
    }
  if (st != TSR_OK)
    goto failed;

  if (answer.timings.prefill_tokens > 16 && answer.timings.prefill_tokens_per_second > 0)
    self->prefill_rate = answer.timings.prefill_tokens_per_second;
  result = g_new0 (TesseraWorkerAnswer, 1);
  result->text = g_strdup (answer.text);
  result->stop = answer.stop;
  result->timings = answer.timings;
  result->n_tokens = (int) answer.n_ids;
  tsr_chat_answer_clear (&answer);
  job_finish (job, result, NULL);
  return;

failed:
  if (st == TSR_ECANCELLED)
    {
      result = g_new0 (TesseraWorkerAnswer, 1);
      result->text = g_strdup ("");
      result->stopped = TRUE;
      job_finish (job, result, NULL);
    }
  else
    job_finish (job, NULL, engine_error (&err));
  self->session_id = 0;
}

static gpointer
worker_thread (gpointer data)
{
  TesseraWorker *self = data;

  for (;;)
    {
      Job *job = g_async_queue_pop (self->queue);
      JobKind kind = job->kind;

      if (kind == JOB_LOAD)
        run_load (self, job);
      else if (kind == JOB_ASK)
        run_ask (self, job);
      job_unref (job);
      g_atomic_int_dec_and_test (&self->busy);
      if (kind == JOB_QUIT)
        break;
    }
  unload (self);
  return NULL;
}

/* ==== Public API ======================================================== */

void
tessera_worker_load_model (TesseraWorker *self, const char *path, int n_threads)
{
  Job *job;
  g_return_if_fail (TESSERA_IS_WORKER (self));

  job = job_new (self, JOB_LOAD);
  job->path = g_strdup (path);
  job->n_threads = n_threads;
  /* Seen at once, before the thread gets to it. */
  self->state = path != NULL && path[0] != '\0' ? TESSERA_WORKER_LOADING : TESSERA_WORKER_EMPTY;
  g_clear_pointer (&self->error, g_free);
  g_free (self->model_path);
  self->model_path = g_strdup (path);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
  g_atomic_int_inc (&self->busy);
  g_async_queue_push (self->queue, job);
}

TesseraWorkerState
tessera_worker_get_state (TesseraWorker *self)
{
  g_return_val_if_fail (TESSERA_IS_WORKER (self), TESSERA_WORKER_EMPTY);
  return self->state;
}

gboolean
tessera_worker_is_busy (TesseraWorker *self)
{
  g_return_val_if_fail (TESSERA_IS_WORKER (self), FALSE);
  return g_atomic_int_get (&self->busy) > 0;
}

const char *
tessera_worker_get_error (TesseraWorker *self)
{
  g_return_val_if_fail (TESSERA_IS_WORKER (self), NULL);
  return self->error;
}

const char *
tessera_worker_get_model_path (TesseraWorker *self)
{
  g_return_val_if_fail (TESSERA_IS_WORKER (self), NULL);
  return self->model_path;
}

const char *
tessera_worker_get_model_name (TesseraWorker *self)
{
  g_return_val_if_fail (TESSERA_IS_WORKER (self), NULL);
  return self->model_name;
}

gint64
tessera_worker_get_model_size (TesseraWorker *self)
{
  g_return_val_if_fail (TESSERA_IS_WORKER (self), 0);
  return self->model_size;
}

void
tessera_worker_ask (TesseraWorker *self, const TesseraWorkerRequest *request, GCancellable *cancellable,
                    TesseraWorkerProgressFunc progress, TesseraWorkerTextFunc text, gpointer user_data,
                    GAsyncReadyCallback callback, gpointer callback_data)
{
  Job *job;

  g_return_if_fail (TESSERA_IS_WORKER (self));
  g_return_if_fail (request != NULL && request->question != NULL);

  job = job_new (self, JOB_ASK);
  job->conversation_id = request->conversation_id;
  if (request->image_rgb != NULL)
    {
      job->image_rgb = g_bytes_ref (request->image_rgb);
      job->width = request->width;
      job->height = request->height;
      job->stride = request->stride;
    }
  else if (request->pixbuf != NULL)
    job->pixbuf = g_object_ref (request->pixbuf);
  job->image_key = g_strdup (request->image_key);
  job->hd_num = request->hd_num > 0 ? request->hd_num : TSR_HD_NUM_DEFAULT;
  job->n_history = request->n_history;
  job->questions = g_new0 (char *, request->n_history + 1);
  job->answers = g_new0 (char *, request->n_history + 1);
  for (int i = 0; i < request->n_history; i++)
    {
      job->questions[i] = g_strdup (request->history[i].question);
      job->answers[i] = g_strdup (request->history[i].answer ? request->history[i].answer : "");
    }
  job->question = g_strdup (request->question);
  job->meta = g_strdup (request->system_prompt);
  job->params = request->params;
  job->cancellable = cancellable ? g_object_ref (cancellable) : g_cancellable_new ();
  job->progress_cb = progress;
  job->text_cb = text;
  job->user_data = user_data;
  job->text = g_string_new (NULL);
  job->task = g_task_new (self, cancellable, callback, callback_data);
  g_task_set_source_tag (job->task, tessera_worker_ask);
  /* A stopped answer is a result, not an error. */
  g_task_set_check_cancellable (job->task, FALSE);

  g_mutex_lock (&job->lock);
  job->progress.stage = TESSERA_WORK_WAITING;
  job->progress.seconds_left = -1;
  job->progress_dirty = TRUE;
  job_schedule_locked (job);
  g_mutex_unlock (&job->lock);

  g_atomic_int_inc (&self->busy);
  g_async_queue_push (self->queue, job);
}

TesseraWorkerAnswer *
tessera_worker_ask_finish (TesseraWorker *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ==== GObject =========================================================== */

static void
tessera_worker_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  TesseraWorker *self = TESSERA_WORKER (object);
  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_int (value, self->state);
      break;
    case PROP_ERROR:
      g_value_set_string (value, self->error);
      break;
    case PROP_MODEL_NAME:
      g_value_set_string (value, self->model_name);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_worker_finalize (GObject *object)
{
  TesseraWorker *self = TESSERA_WORKER (object);

  /* Jobs hold the GTask, which holds the worker: no question is left by
   * now, only perhaps a load, whose state nobody will see. */
  g_atomic_int_set (&self->quitting, 1);
  g_atomic_int_inc (&self->busy);
  g_async_queue_push (self->queue, job_new (self, JOB_QUIT));
  g_thread_join (self->thread);
  g_async_queue_unref (self->queue);
  g_main_context_unref (self->context);
  g_free (self->error);
  g_free (self->model_path);
  g_free (self->model_name);
  G_OBJECT_CLASS (tessera_worker_parent_class)->finalize (object);
}

static void
tessera_worker_class_init (TesseraWorkerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = tessera_worker_get_property;
  object_class->finalize = tessera_worker_finalize;

  properties[PROP_STATE] = g_param_spec_int ("state", NULL, NULL, TESSERA_WORKER_EMPTY, TESSERA_WORKER_FAILED,
                                             TESSERA_WORKER_EMPTY, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_ERROR] = g_param_spec_string ("error", NULL, NULL, NULL,
                                                G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_MODEL_NAME] = g_param_spec_string ("model-name", NULL, NULL, NULL,
                                                     G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
tessera_worker_init (TesseraWorker *self)
{
  self->queue = g_async_queue_new ();
  /* The global default context, not the thread-default one: GApplication
   * runs its startup with a context of its own pushed, and reports sent
   * there would never be seen. */
  self->context = g_main_context_ref (g_main_context_default ());
  self->thread = g_thread_new ("tessera-model", worker_thread, self);
}

TesseraWorker *
tessera_worker_new (void)
{
  return g_object_new (TESSERA_TYPE_WORKER, NULL);
}
