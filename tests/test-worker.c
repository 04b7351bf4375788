/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-worker.c — the model's thread (app/tessera-worker.c) without a
 * display, on a tiny model converted at test time: the order of what a
 * question reports, the coalescing of reports while the main loop is
 * busy, cancelling before and during an answer, a queue of questions,
 * conversations switching back and forth (the answers must equal those
 * of a fresh session each time), and a model swapped for a bad file.
 *
 *   test-worker CHECKPOINT_DIR
 */
#include "config.h"

#include <string.h>
#include <glib/gstdio.h>

#include "tessera-worker.h"

static char *tmp_dir, *model_path;
static GBytes *rgb;
static const int W = 700, H = 300;

typedef struct {
  GArray  *stages;          /* TesseraWorkStage of each progress call */
  int      progress_calls, text_calls, max_total_views;
  char    *text;            /* the last text */
  gboolean text_shrank;
  TesseraWorkerAnswer *answer;
  GError  *error;
  gboolean done;
  int      order;           /* when it finished, among the questions */
} Run;

static int finished_count;

static void
progress_cb (const TesseraWorkProgress *p, gpointer data)
{
  Run *r = data;
  g_assert_false (r->done);
  r->progress_calls++;
  g_array_append_val (r->stages, p->stage);
  g_assert_cmpint (p->done, <=, p->total > 0 ? p->total : p->done);
  if (p->stage == TESSERA_WORK_ENCODING)
    r->max_total_views = MAX (r->max_total_views, p->total);
}

static void
text_cb (const char *text, gpointer data)
{
  Run *r = data;
  g_assert_false (r->done);
  r->text_calls++;
  if (r->text != NULL && !g_str_has_prefix (text, r->text))
    r->text_shrank = TRUE;
  g_free (r->text);
  r->text = g_strdup (text);
}

static void
done_cb (GObject *source, GAsyncResult *result, gpointer data)
{
  Run *r = data;
  r->answer = tessera_worker_ask_finish (TESSERA_WORKER (source), result, &r->error);
  r->done = TRUE;
  r->order = ++finished_count;
}

static void
run_init (Run *r)
{
  memset (r, 0, sizeof *r);
  r->stages = g_array_new (FALSE, FALSE, sizeof (TesseraWorkStage));
}

static void
run_clear (Run *r)
{
  g_array_unref (r->stages);
  g_free (r->text);
  g_clear_pointer (&r->answer, tessera_worker_answer_free);
  g_clear_error (&r->error);
}

static void
wait_done (Run *r)
{
  gint64 end = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
  while (!r->done)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (200);
      g_assert_cmpint (g_get_monotonic_time (), <, end);
    }
}

static gboolean
settled (TesseraWorker *w)
{
  return tessera_worker_get_state (w) != TESSERA_WORKER_LOADING;
}

static TesseraWorker *
ready_worker (void)
{
  TesseraWorker *w = tessera_worker_new ();
  gint64 end = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  tessera_worker_load_model (w, model_path, 0);
  while (!settled (w))
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (500);
      g_assert_cmpint (g_get_monotonic_time (), <, end);
    }
  g_assert_cmpint (tessera_worker_get_state (w), ==, TESSERA_WORKER_READY);
  return w;
}

static TesseraWorkerRequest
request (gint64 conversation, const char *question, gboolean image, int max_new)
{
  TesseraWorkerRequest req = { 0 };
  req.conversation_id = conversation;
  if (image)
    {
      req.image_rgb = rgb;
      req.width = W;
      req.height = H;
      req.stride = W * 3;
      req.image_key = "test-image";
    }
  req.hd_num = 9;
  req.question = question;
  req.params = tsr_gen_default_params ();
  req.params.max_new_tokens = max_new;
  return req;
}

static void
ask (TesseraWorker *w, const TesseraWorkerRequest *req, GCancellable *c, Run *r)
{
  tessera_worker_ask (w, req, c, progress_cb, text_cb, r, done_cb, r);
}

/* ---- Tests -------------------------------------------------------------- */

static void
test_order (void)
{
  g_autoptr(TesseraWorker) w = ready_worker ();
  TesseraWorkerRequest req = request (1, "What is in the picture?", TRUE, 16);
  TsrHdPlan plan;
  TsrError err;
  Run r;
  TesseraWorkStage last = TESSERA_WORK_WAITING;

  run_init (&r);
  ask (w, &req, NULL, &r);
  wait_done (&r);
  g_assert_no_error (r.error);
  g_assert_nonnull (r.answer);
  g_assert_false (r.answer->stopped);
  g_assert_cmpint (r.answer->n_tokens, ==, 16);
  g_assert_cmpint (r.answer->stop, ==, TSR_CHAT_STOP_LENGTH);
  /* Stages only go forward, and the text only grows, to the answer. */
  for (guint i = 0; i < r.stages->len; i++)
    {
      TesseraWorkStage s = g_array_index (r.stages, TesseraWorkStage, i);
      g_assert_cmpint (s, >=, last);
      last = s;
    }
  g_assert_cmpint (g_array_index (r.stages, TesseraWorkStage, 0), ==, TESSERA_WORK_WAITING);
  g_assert_false (r.text_shrank);
  g_assert_cmpint (r.text_calls, >=, 1);
  g_assert_cmpstr (r.text, ==, r.answer->text);
  g_assert_cmpint (tsr_hd_plan (W, H, 9, &plan, &err), ==, TSR_OK);
  if (r.max_total_views > 0)
    g_assert_cmpint (r.max_total_views, ==, plan.tiles + 1);
  g_test_message ("%d progress and %d text reports for %d tokens", r.progress_calls, r.text_calls,
                  r.answer->n_tokens);
  run_clear (&r);
}

/* While the main loop does not run, the worker's reports pile up into one
 * pending source, not one per token. */
static void
test_coalescing (void)
{
  g_autoptr(TesseraWorker) w = ready_worker ();
  TesseraWorkerRequest req = request (2, "Tell me a long story.", TRUE, 64);
  Run r;
  int sources = 0;

  run_init (&r);
  ask (w, &req, NULL, &r);
  /* Until the worker has finished everything, without a main loop. */
  {
    gint64 end = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
    while (tessera_worker_is_busy (w))
      {
        g_usleep (20000);
        g_assert_cmpint (g_get_monotonic_time (), <, end);
      }
  }
  while (g_main_context_pending (NULL) && !r.done)
    {
      g_main_context_iteration (NULL, FALSE);
      sources++;
    }
  wait_done (&r);
  g_test_message ("after an answer without a main loop: %d dispatches, %d progress, %d text reports", sources,
                  r.progress_calls, r.text_calls);
  g_assert_no_error (r.error);
  g_assert_cmpint (r.answer->n_tokens, ==, 64);
  g_assert_cmpint (r.progress_calls, <=, 1);
  g_assert_cmpint (r.text_calls, ==, 1);
  g_assert_cmpstr (r.text, ==, r.answer->text);
  run_clear (&r);
}

static void
test_cancel (void)
{
  g_autoptr(TesseraWorker) w = ready_worker ();
  TesseraWorkerRequest req = request (3, "Describe it.", TRUE, 4000);
  g_autoptr(GCancellable) before = g_cancellable_new ();
  g_autoptr(GCancellable) during = g_cancellable_new ();
  Run r;

  /* Cancelled before it starts: a stopped, empty answer. */
  run_init (&r);
  g_cancellable_cancel (before);
  ask (w, &req, before, &r);
  wait_done (&r);
  g_assert_no_error (r.error);
  g_assert_true (r.answer->stopped);
  g_assert_cmpstr (r.answer->text, ==, "");
  run_clear (&r);

  /* Cancelled once text arrives: what was written is kept. */
  run_init (&r);
  ask (w, &req, during, &r);
  while (!r.done && (r.text == NULL || strlen (r.text) < 4))
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (200);
    }
  g_cancellable_cancel (during);
  wait_done (&r);
  g_assert_no_error (r.error);
  g_assert_true (r.answer->stopped);
  g_assert_true (g_str_has_prefix (r.answer->text, r.text));
  run_clear (&r);

  /* And the session answers again. */
  run_init (&r);
  req = request (3, "Again, shortly.", TRUE, 8);
  ask (w, &req, NULL, &r);
  wait_done (&r);
  g_assert_no_error (r.error);
  g_assert_cmpint (r.answer->n_tokens, ==, 8);
  run_clear (&r);
}

static char *
answer_of (TesseraWorker *w, const TesseraWorkerRequest *req)
{
  Run r;
  char *text;
  run_init (&r);
  ask (w, req, NULL, &r);
  wait_done (&r);
  g_assert_no_error (r.error);
  text = g_strdup (r.answer->text);
  run_clear (&r);
  return text;
}

/* Two conversations asked in turn on one worker give the answers each
 * gets from a worker of its own: the session is reset and restored. */
static void
test_switching (void)
{
  g_autoptr(TesseraWorker) shared = ready_worker ();
  g_autoptr(TesseraWorker) alone_a = ready_worker ();
  g_autoptr(TesseraWorker) alone_b = ready_worker ();
  TesseraWorkerTurn turn_a = { 0 }, turn_b = { 0 };
  TesseraWorkerRequest a1 = request (10, "What colour is it?", TRUE, 12);
  TesseraWorkerRequest b1 = request (11, "Hello there.", FALSE, 12);
  g_autofree char *sa1 = answer_of (shared, &a1), *sb1 = answer_of (shared, &b1);
  g_autofree char *xa1 = answer_of (alone_a, &a1), *xb1 = answer_of (alone_b, &b1);
  g_autofree char *sa2 = NULL, *sb2 = NULL, *xa2 = NULL, *xb2 = NULL;
  TesseraWorkerRequest a2 = request (10, "And the shape?", TRUE, 12);
  TesseraWorkerRequest b2 = request (11, "How are you?", FALSE, 12);

  g_assert_cmpstr (sa1, ==, xa1);
  g_assert_cmpstr (sb1, ==, xb1);
  turn_a.question = a1.question;
  turn_a.answer = sa1;
  turn_b.question = b1.question;
  turn_b.answer = sb1;
  a2.history = &turn_a;
  a2.n_history = 1;
  b2.history = &turn_b;
  b2.n_history = 1;
  sa2 = answer_of (shared, &a2);
  sb2 = answer_of (shared, &b2);
  xa2 = answer_of (alone_a, &a2);
  xb2 = answer_of (alone_b, &b2);
  g_assert_cmpstr (sa2, ==, xa2);
  g_assert_cmpstr (sb2, ==, xb2);
}

static void
test_queue_and_bad_model (void)
{
  g_autoptr(TesseraWorker) w = ready_worker ();
  TesseraWorkerRequest q1 = request (20, "First?", FALSE, 8), q2 = request (21, "Second?", FALSE, 8);
  g_autofree char *junk = g_build_filename (tmp_dir, "junk.gguf", NULL);
  Run r1, r2, r3;

  run_init (&r1);
  run_init (&r2);
  finished_count = 0;
  ask (w, &q1, NULL, &r1);
  ask (w, &q2, NULL, &r2);
  wait_done (&r2);
  wait_done (&r1);
  g_assert_cmpint (r1.order, ==, 1);
  g_assert_cmpint (r2.order, ==, 2);
  g_assert_no_error (r2.error);
  run_clear (&r1);
  run_clear (&r2);

  /* A bad file replaces the model: questions then fail clearly. */
  g_assert_true (g_file_set_contents (junk, "GGUF but not really", -1, NULL));
  tessera_worker_load_model (w, junk, 0);
  while (!settled (w))
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (tessera_worker_get_state (w), ==, TESSERA_WORKER_FAILED);
  run_init (&r3);
  ask (w, &q1, NULL, &r3);
  wait_done (&r3);
  g_assert_error (r3.error, TESSERA_WORKER_ERROR, TESSERA_WORKER_ERROR_NO_MODEL);
  run_clear (&r3);
}

int
main (int argc, char **argv)
{
  TsrConvertParams params;
  TsrError err;
  guint8 *px;
  int rc;

  g_test_init (&argc, &argv, NULL);
  if (argc < 2)
    g_error ("usage: test-worker CHECKPOINT_DIR");
  tmp_dir = g_dir_make_tmp ("tessera-worker-XXXXXX", NULL);
  model_path = g_build_filename (tmp_dir, "tiny.gguf", NULL);
  tsr_convert_params_init (&params);
  params.type = TSR_DTYPE_F32;
  if (tsr_convert (argv[1], model_path, &params, &err) != TSR_OK)
    g_error ("converting %s: %s", argv[1], err.message);

  /* A picture with structure: gradients and a block. */
  px = g_malloc ((gsize) W * H * 3);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      {
        guint8 *p = px + ((gsize) y * W + x) * 3;
        gboolean block = x > 200 && x < 400 && y > 80 && y < 200;
        p[0] = block ? 200 : (guint8) (x * 255 / W);
        p[1] = block ? 30 : (guint8) (y * 255 / H);
        p[2] = (guint8) ((x + y) & 0xff);
      }
  rgb = g_bytes_new_take (px, (gsize) W * H * 3);

  g_test_add_func ("/worker/order", test_order);
  g_test_add_func ("/worker/coalescing", test_coalescing);
  g_test_add_func ("/worker/cancel", test_cancel);
  g_test_add_func ("/worker/switching", test_switching);
  g_test_add_func ("/worker/queue-and-bad-model", test_queue_and_bad_model);
  rc = g_test_run ();

  g_bytes_unref (rgb);
  g_unlink (model_path);
  {
    g_autofree char *junk = g_build_filename (tmp_dir, "junk.gguf", NULL);
    g_unlink (junk);
  }
  g_rmdir (tmp_dir);
  return rc;
}
