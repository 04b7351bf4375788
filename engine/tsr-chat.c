/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-chat.c — chat sessions over an internlm2-4khd model (model.md §8).
 *
 * The cache is described row by row (a token id, or row r of image k), so
 * that before each question the session can build the whole prompt the
 * official code would feed, find how much of it the cache already holds,
 * and prefill only the rest. Nothing is assumed about how the previous
 * answer re-tokenises: if it comes out differently, the cache is cut back
 * to where the two first differ.
 */
#include "tsr-chat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsr-error.h"
#include "tsr-llm.h"
#include "tsr-sampler.h"

/* Rows per forward call while prefilling: tsr_llm_forward's own chunk, so
 * progress and the abort poll come once per chunk at no cost. */
#define PREFILL_CHUNK TSR_LLM_PREFILL_CHUNK

/* Long enough for any piece (128 spaces is the longest in InternLM2) plus
 * held bytes turned into U+FFFD. */
#define PIECE_MAX 4096

static const char default_meta[] =
  "You are an AI assistant whose name is InternLM-XComposer (浦语·灵笔).\n"
  "- InternLM-XComposer (浦语·灵笔) is a multi-modality conversational language model that is "
  "developed by Shanghai AI Laboratory (上海人工智能实验室). It is designed to be helpful, honest, and "
  "harmless.\n"
  "- InternLM-XComposer (浦语·灵笔) can understand and communicate fluently in the language chosen by "
  "the user such as English and 中文.\n"
  "- InternLM-XComposer (浦语·灵笔) is capable of comprehending and articulating responses effectively "
  "based on the provided image.";

typedef struct {
  int32_t token;   /* a text row's id, or −1 */
  int32_t image;   /* an image row: which image of the conversation, else −1 */
  int32_t row;     /* and which of its rows */
} Row;

typedef struct {
  Row   *v;
  size_t n, cap;
} RowVec;

typedef struct {
  float *embd;     /* n_rows × n_embd */
  int    n_rows;
} Image;

typedef struct {
  char *question, *answer;
  int   n_images;
} Turn;

struct TsrChat
{
  const TsrLlm       *llm;
  const TsrTokenizer *tok;
  TsrPool            *pool;
  TsrChatEncodeFunc   encode;
  void               *encode_data;
  const TsrVision    *vision;
  char               *meta;
  int                 n_ctx;
  TsrDType            kv_type;
  size_t              n_vocab;
  int64_t             n_embd;
  int32_t             bos, eos, im_end, lit_bos;
  char               *im_start_text, *im_end_text;
  TsrLlmState        *state;
  Row                *rows;       /* what the cache holds: n_rows = the state's position */
  int                 n_rows;
  Turn               *turns;
  int                 n_turns, cap_turns;
  Image              *images;     /* every image of the conversation, in prompt order */
  int                 n_images, cap_images;
};

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static char *
dup_n (const char *s, size_t n)
{
  char *d = malloc (n + 1);
  if (d != NULL)
    {
      memcpy (d, s, n);
      d[n] = '\0';
    }
  return d;
}

static TsrStatus
oom (TsrError *err)
{
  return tsr_error_set (err, TSR_ENOMEM, "Out of memory in the chat session.");
}

/* ==== The clean-up (model.md §13.11) ==================================== */

static const char *const cleanup_from[] = { " .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're" };
static const char *const cleanup_to[] = { ".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re" };

size_t
tsr_chat_clean_up (char *text, size_t len)
{
  /* As Python's str.replace, one pattern after the other: each pass scans
   * left to right without overlaps, and a later pass sees the earlier
   * passes' output. Replacements are shorter, so in place is safe. */
  for (size_t p = 0; p < sizeof cleanup_from / sizeof *cleanup_from; p++)
    {
      size_t fl = strlen (cleanup_from[p]), tl = strlen (cleanup_to[p]), i = 0, o = 0;
      while (i < len)
        {
          if (i + fl <= len && memcmp (text + i, cleanup_from[p], fl) == 0)
            {
              memcpy (text + o, cleanup_to[p], tl);
              o += tl;
              i += fl;
            }
          else
            text[o++] = text[i++];
        }
      len = o;
    }
  text[len] = '\0';
  return len;
}

/* ==== The answer stream ================================================= */

void
tsr_text_stream_init (TsrTextStream *s, const char *marker, size_t marker_len)
{
  memset (s, 0, sizeof *s);
  s->marker = marker;
  s->marker_len = marker_len;
}

void
tsr_text_stream_fini (TsrTextStream *s)
{
  free (s->raw);
  free (s->sent);
  free (s->work);
  memset (s, 0, sizeof *s);
}

static int
reserve (char **buf, size_t *cap, size_t need)
{
  if (need <= *cap)
    return 1;
  size_t n = *cap ? *cap : 256;
  while (n < need)
    n *= 2;
  char *p = realloc (*buf, n);
  if (p == NULL)
    return 0;
  *buf = p;
  *cap = n;
  return 1;
}

/* How much of raw is settled: a later piece cannot change how it cleans. */
static size_t
settled (const TsrTextStream *s)
{
  size_t k = s->n_raw, w;
  /* The start of the marker waits until it is the marker or is not. */
  for (size_t l = s->marker_len > 0 ? s->marker_len - 1 : 0; l > 0; l--)
    if (l <= k && memcmp (s->raw + k - l, s->marker, l) == 0)
      {
        k -= l;
        break;
      }
  /* Every pattern starts with a space and is at most 4 bytes, so a space
   * among the last 4 bytes may still start one; a space within 4 bytes
   * before such a space may too (" ' " holds two), and so on back. */
  w = k >= 4 ? k - 4 : 0;
  for (size_t j = k; j-- > w;)
    if (s->raw[j] == ' ')
      {
        k = j;
        w = j >= 4 ? j - 4 : 0;
      }
  return k;
}

TsrStatus
tsr_text_stream_push (TsrTextStream *s, const char *text, size_t len, int final, const char **out,
                      size_t *n_out, TsrError *err)
{
  size_t k, n;

  *out = "";
  *n_out = 0;
  if (!s->cut && len > 0)
    {
      size_t from = s->n_raw >= s->marker_len ? s->n_raw - s->marker_len + 1 : 0;
      if (!reserve (&s->raw, &s->cap_raw, s->n_raw + len + 1))
        return oom (err);
      memcpy (s->raw + s->n_raw, text, len);
      s->n_raw += len;
      /* HF cuts the decoded text at the first im_end text. */
      if (s->marker_len > 0)
        for (size_t i = from; i + s->marker_len <= s->n_raw; i++)
          if (memcmp (s->raw + i, s->marker, s->marker_len) == 0)
            {
              s->n_raw = i;
              s->cut = 1;
              break;
            }
    }
  k = final || s->cut ? s->n_raw : settled (s);
  if (!reserve (&s->work, &s->cap_work, k + 1))
    return oom (err);
  if (k > 0)
    memcpy (s->work, s->raw, k);
  n = tsr_chat_clean_up (s->work, k);
  /* The settled text's cleaning extends what went out; should it ever not,
   * nothing more goes out rather than something wrong. */
  if (n <= s->n_sent || (s->n_sent > 0 && memcmp (s->work, s->sent, s->n_sent) != 0))
    return TSR_OK;
  if (!reserve (&s->sent, &s->cap_sent, n + 1))
    return oom (err);
  memcpy (s->sent + s->n_sent, s->work + s->n_sent, n - s->n_sent);
  *out = s->sent + s->n_sent;
  *n_out = n - s->n_sent;
  s->n_sent = n;
  return TSR_OK;
}

/* ==== Sessions ========================================================== */

void
tsr_chat_config_init (TsrChatConfig *c)
{
  memset (c, 0, sizeof *c);
  c->kv_type = TSR_DTYPE_F32;
}

const char *
tsr_chat_default_meta (void)
{
  return default_meta;
}

void
tsr_chat_answer_clear (TsrChatAnswer *a)
{
  if (a == NULL)
    return;
  free (a->text);
  free (a->ids);
  memset (a, 0, sizeof *a);
}

static char *
piece_text (const TsrTokenizer *tok, int32_t id)
{
  size_t len;
  const char *p = tsr_tokenizer_piece (tok, id, &len);
  return p != NULL ? dup_n (p, len) : NULL;
}

TsrStatus
tsr_chat_new (const TsrLlm *llm, const TsrTokenizer *tok, TsrPool *pool, const TsrChatConfig *config,
              TsrChat **out, TsrError *err)
{
  const TsrGgufModelInfo *info;
  TsrChatConfig defaults;
  TsrChat *c;
  TsrStatus st;
  int n_ctx;

  *out = NULL;
  if (llm == NULL || tok == NULL || pool == NULL)
    return tsr_error_set (err, TSR_EINVAL, "A chat needs a model, its tokenizer and a worker pool.");
  if (config == NULL)
    {
      tsr_chat_config_init (&defaults);
      config = &defaults;
    }
  info = tsr_llm_info (llm);
  if (info->synthetic)
    return tsr_error_set (err, TSR_EINVAL, "This model file holds random weights for benchmarks; it "
                          "cannot chat.");
  if (info->arch != TSR_ARCH_INTERNLM2_4KHD || info->im_end_id < 0 || info->im_start_id < 0 ||
      (size_t) info->im_end_id >= tsr_tokenizer_n_vocab (tok) ||
      (size_t) info->im_start_id >= tsr_tokenizer_n_vocab (tok))
    return tsr_error_set (err, TSR_EINVAL, "This model has no chat template (an internlm2-4khd file "
                          "with turn start and end tokens); use tessera-cli complete for plain text.");
  if (tsr_tokenizer_bos (tok) < 0)
    return tsr_error_set (err, TSR_EINVAL, "The model's tokenizer has no BOS token, which the chat "
                          "prompt needs.");
  n_ctx = config->n_ctx;
  if (n_ctx <= 0)
    {
      n_ctx = TSR_LLM_MAX_CONTEXT;
      if (info->n_ctx > 0 && info->n_ctx < (uint32_t) n_ctx)
        n_ctx = (int) info->n_ctx;
    }
  if (n_ctx > TSR_LLM_MAX_CONTEXT)
    return tsr_error_set (err, TSR_EINVAL, "A chat context of %d tokens is past the limit of %d.", n_ctx,
                          TSR_LLM_MAX_CONTEXT);
  if (config->vision != NULL && tsr_vision_info (config->vision)->n_out != (int) info->n_embd)
    return tsr_error_set (err, TSR_EINVAL, "The vision tower gives rows of %d values, the decoder reads "
                          "%u: they are not from the same model.", tsr_vision_info (config->vision)->n_out,
                          info->n_embd);

  c = calloc (1, sizeof *c);
  if (c == NULL)
    return oom (err);
  c->llm = llm;
  c->tok = tok;
  c->pool = pool;
  c->encode = config->encode;
  c->encode_data = config->encode_data;
  c->vision = config->vision;
  c->n_ctx = n_ctx;
  c->kv_type = config->kv_type;
  c->n_vocab = info->n_vocab;
  c->n_embd = info->n_embd;
  c->bos = tsr_tokenizer_bos (tok);
  c->eos = tsr_tokenizer_eos (tok);
  c->im_end = (int32_t) info->im_end_id;
  /* The text path's literal "<s>" is a special token to HF's tokenizer. */
  c->lit_bos = tsr_tokenizer_find (tok, "<s>", 3);
  if (c->lit_bos < 0)
    c->lit_bos = c->bos;
  c->meta = strdup (config->meta != NULL ? config->meta : default_meta);
  c->im_start_text = piece_text (tok, (int32_t) info->im_start_id);
  c->im_end_text = piece_text (tok, c->im_end);
  c->rows = malloc ((size_t) n_ctx * sizeof *c->rows);
  if (c->meta == NULL || c->im_start_text == NULL || c->im_end_text == NULL || c->rows == NULL)
    {
      tsr_chat_free (c);
      return oom (err);
    }
  if ((st = tsr_llm_state_new_kv (llm, n_ctx, config->kv_type, &c->state, err)) != TSR_OK)
    {
      tsr_chat_free (c);
      return st;
    }
  *out = c;
  return TSR_OK;
}

static void
free_turns_and_images (TsrChat *c)
{
  for (int i = 0; i < c->n_turns; i++)
    {
      free (c->turns[i].question);
      free (c->turns[i].answer);
    }
  for (int i = 0; i < c->n_images; i++)
    free (c->images[i].embd);
  c->n_turns = 0;
  c->n_images = 0;
}

void
tsr_chat_free (TsrChat *c)
{
  if (c == NULL)
    return;
  free_turns_and_images (c);
  free (c->turns);
  free (c->images);
  free (c->rows);
  free (c->meta);
  free (c->im_start_text);
  free (c->im_end_text);
  tsr_llm_state_free (c->state);
  free (c);
}

static void
cache_rewind (TsrChat *c, int pos)
{
  if (pos < c->n_rows)
    {
      tsr_llm_state_rewind (c->state, pos);
      c->n_rows = pos;
    }
}

void
tsr_chat_reset (TsrChat *c)
{
  free_turns_and_images (c);
  cache_rewind (c, 0);
}

int
tsr_chat_n_turns (const TsrChat *c)
{
  return c->n_turns;
}

int
tsr_chat_n_cached (const TsrChat *c)
{
  return c->n_rows;
}

/* Drops the images from `keep` on, and every cached row from the first
 * that shows one of them (a later image k must not match their rows). */
static void
forget_images (TsrChat *c, int keep)
{
  if (keep >= c->n_images)
    return;
  for (int i = 0; i < c->n_rows; i++)
    if (c->rows[i].image >= keep)
      {
        cache_rewind (c, i);
        break;
      }
  for (int i = keep; i < c->n_images; i++)
    free (c->images[i].embd);
  c->n_images = keep;
}

static int
count_tags (const char *q)
{
  int n = 0;
  size_t tl = strlen (TSR_CHAT_IMAGE_TAG);
  for (const char *p = strstr (q, TSR_CHAT_IMAGE_TAG); p != NULL; p = strstr (p + tl, TSR_CHAT_IMAGE_TAG))
    n++;
  return n;
}

static TsrStatus
check_question (const char *question, int n_images, TsrError *err)
{
  int tags;
  if (question == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No question was given.");
  if (n_images < 0)
    return tsr_error_set (err, TSR_EINVAL, "A negative number of images was given.");
  tags = count_tags (question);
  if (tags != n_images)
    return tsr_error_set (err, TSR_EINVAL, "The question holds %d %s but %d image%s came with it; put "
                          "one %s where each image goes.", tags, TSR_CHAT_IMAGE_TAG, n_images,
                          n_images == 1 ? "" : "s", TSR_CHAT_IMAGE_TAG);
  return TSR_OK;
}

/* Appends the question's images to the conversation (the caller forgets
 * them again if the question fails). */
static TsrStatus
add_images (TsrChat *c, const TsrChatImage *imgs, int n, const TsrChatCallbacks *cb, double *seconds,
            TsrError *err)
{
  TsrLlmAbort abort_cb = { cb ? cb->should_abort : NULL, cb ? cb->user_data : NULL };
  double t0 = now_s ();
  TsrStatus st = TSR_OK;

  if (n > 0 && imgs == NULL)
    return tsr_error_set (err, TSR_EINVAL, "%d images were announced but none given.", n);
  if (c->n_images + n > c->cap_images)
    {
      int cap = c->cap_images ? c->cap_images : 4;
      while (cap < c->n_images + n)
        cap *= 2;
      Image *v = realloc (c->images, (size_t) cap * sizeof *v);
      if (v == NULL)
        return oom (err);
      c->images = v;
      c->cap_images = cap;
    }
  for (int i = 0; i < n; i++)
    {
      const TsrChatImage *im = &imgs[i];
      float *rows = NULL;
      int n_rows = 0;

      if (cb != NULL && cb->progress != NULL)
        cb->progress ("image", i, n, cb->user_data);
      if (im->embd != NULL)
        {
          if (im->n_rows <= 0)
            return tsr_error_set (err, TSR_EINVAL, "Image %d has %d rows.", i + 1, im->n_rows);
          rows = malloc ((size_t) im->n_rows * (size_t) c->n_embd * sizeof *rows);
          if (rows == NULL)
            return oom (err);
          memcpy (rows, im->embd, (size_t) im->n_rows * (size_t) c->n_embd * sizeof *rows);
          n_rows = im->n_rows;
        }
      else if (im->rgb == NULL)
        return tsr_error_set (err, TSR_EINVAL, "Image %d has neither pixels nor rows.", i + 1);
      else if (c->encode != NULL)
        {
          if ((st = c->encode (c->encode_data, im, &abort_cb, &rows, &n_rows, err)) != TSR_OK)
            return st;
          if (rows == NULL || n_rows <= 0)
            {
              free (rows);
              return tsr_error_set (err, TSR_EINVAL, "The image encoder gave no rows for image %d.", i + 1);
            }
        }
      else if (c->vision != NULL)
        {
          TsrHdPlan plan;
          TsrVisionParams vp;
          size_t count;
          if ((st = tsr_hd_plan (im->width, im->height, im->hd_num, &plan, err)) != TSR_OK)
            return st;
          count = (size_t) plan.tokens * (size_t) c->n_embd;
          rows = malloc (count * sizeof *rows);
          if (rows == NULL)
            return oom (err);
          tsr_vision_params_init (&vp);
          vp.hd_num = im->hd_num;
          if (cb != NULL)
            {
              vp.progress = cb->progress;
              vp.should_abort = cb->should_abort;
              vp.user_data = cb->user_data;
            }
          if ((st = tsr_vision_encode (c->vision, c->pool, im->rgb, im->width, im->height, im->stride, &vp,
                                       rows, count, NULL, err)) != TSR_OK)
            {
              free (rows);
              return st;
            }
          n_rows = plan.tokens;
        }
      else
        return tsr_error_set (err, TSR_EINVAL, "This chat session has no image encoder; give the image's "
                              "rows instead of its pixels.");
      c->images[c->n_images].embd = rows;
      c->images[c->n_images].n_rows = n_rows;
      c->n_images++;
    }
  if (cb != NULL && cb->progress != NULL && n > 0)
    cb->progress ("image", n, n, cb->user_data);
  if (seconds != NULL)
    *seconds = now_s () - t0;
  return st;
}

/* ---- The prompt (model.md §8.2) ---------------------------------------- */

typedef struct {
  char  *v;
  size_t n, cap;
} Buf;

static int
buf_add (Buf *b, const char *s, size_t n)
{
  if (!reserve (&b->v, &b->cap, b->n + n + 1))
    return 0;
  memcpy (b->v + b->n, s, n);
  b->n += n;
  b->v[b->n] = '\0';
  return 1;
}

static int
buf_str (Buf *b, const char *s)
{
  return buf_add (b, s, strlen (s));
}

static int
rows_push (RowVec *r, int32_t token, int32_t image, int32_t row)
{
  if (r->n == r->cap)
    {
      size_t cap = r->cap ? 2 * r->cap : 1024;
      Row *v = realloc (r->v, cap * sizeof *v);
      if (v == NULL)
        return 0;
      r->v = v;
      r->cap = cap;
    }
  r->v[r->n].token = token;
  r->v[r->n].image = image;
  r->v[r->n].row = row;
  r->n++;
  return 1;
}

typedef struct {
  TsrChat    *c;
  RowVec      rows;
  Buf         text;          /* the text segment being gathered */
  int         image_path;
  const int  *img_rows;      /* rows of every image of the conversation */
  int         next_image;
} Prompt;

/* The gathered text becomes rows: on the image path each non-empty
 * segment gets its own BOS, as HF tokenises each part separately. */
static TsrStatus
flush_text (Prompt *p, TsrError *err)
{
  int32_t *ids = NULL;
  size_t n = 0;
  TsrStatus st;

  if (p->text.n == 0)
    return TSR_OK;
  if ((st = tsr_tokenizer_encode (p->c->tok, p->text.v, p->text.n, 0, &ids, &n, err)) != TSR_OK)
    return st;
  if (!rows_push (&p->rows, p->c->bos, -1, 0))
    goto fail;
  /* build_inputs' "<s>" comes out as a second BOS on the text path. */
  if (!p->image_path && !rows_push (&p->rows, p->c->lit_bos, -1, 0))
    goto fail;
  for (size_t i = 0; i < n; i++)
    if (!rows_push (&p->rows, ids[i], -1, 0))
      goto fail;
  free (ids);
  p->text.n = 0;
  return TSR_OK;
fail:
  free (ids);
  return oom (err);
}

/* A question's text, with its images spliced where it puts them. */
static TsrStatus
add_question (Prompt *p, const char *q, TsrError *err)
{
  size_t tl = strlen (TSR_CHAT_IMAGE_TAG);
  const char *tag;
  TsrStatus st;

  while ((tag = strstr (q, TSR_CHAT_IMAGE_TAG)) != NULL)
    {
      int k = p->next_image++;
      if (!buf_add (&p->text, q, (size_t) (tag - q)))
        return oom (err);
      if ((st = flush_text (p, err)) != TSR_OK)
        return st;
      for (int r = 0; r < p->img_rows[k]; r++)
        if (!rows_push (&p->rows, -1, k, r))
          return oom (err);
      q = tag + tl;
    }
  return buf_str (&p->text, q) ? TSR_OK : oom (err);
}

static TsrStatus
build_prompt (TsrChat *c, const char *question, const int *img_rows, int n_images_total, Prompt *p,
              TsrError *err)
{
  const char *S = c->im_start_text, *E = c->im_end_text;
  TsrStatus st;

  memset (p, 0, sizeof *p);
  p->c = c;
  p->img_rows = img_rows;
  p->image_path = n_images_total > 0;
  if (c->meta[0] != '\0' &&
      !(buf_str (&p->text, S) && buf_str (&p->text, "system\n") && buf_str (&p->text, c->meta) &&
        buf_str (&p->text, E) && buf_str (&p->text, "\n")))
    return oom (err);
  for (int t = 0; t < c->n_turns; t++)
    {
      if (!(buf_str (&p->text, S) && buf_str (&p->text, "user\n")))
        return oom (err);
      if ((st = add_question (p, c->turns[t].question, err)) != TSR_OK)
        return st;
      if (!(buf_str (&p->text, E) && buf_str (&p->text, "\n") && buf_str (&p->text, S) &&
            buf_str (&p->text, "assistant\n") && buf_str (&p->text, c->turns[t].answer) &&
            buf_str (&p->text, E) && buf_str (&p->text, "\n")))
        return oom (err);
    }
  if (!(buf_str (&p->text, S) && buf_str (&p->text, "user\n")))
    return oom (err);
  if ((st = add_question (p, question, err)) != TSR_OK)
    return st;
  if (!(buf_str (&p->text, E) && buf_str (&p->text, "\n") && buf_str (&p->text, S) &&
        buf_str (&p->text, "assistant\n")))
    return oom (err);
  return flush_text (p, err);
}

static void
prompt_free (Prompt *p)
{
  free (p->rows.v);
  free (p->text.v);
}

TsrStatus
tsr_chat_prompt (TsrChat *c, const char *question, const int *image_rows, int n_images, int32_t **out,
                 size_t *n_out, TsrError *err)
{
  int *all;
  Prompt p;
  TsrStatus st;

  *out = NULL;
  *n_out = 0;
  if ((st = check_question (question, n_images, err)) != TSR_OK)
    return st;
  all = malloc ((size_t) (c->n_images + n_images + 1) * sizeof *all);
  if (all == NULL)
    return oom (err);
  for (int i = 0; i < c->n_images; i++)
    all[i] = c->images[i].n_rows;
  for (int i = 0; i < n_images; i++)
    all[c->n_images + i] = image_rows[i];
  st = build_prompt (c, question, all, c->n_images + n_images, &p, err);
  if (st == TSR_OK)
    {
      *out = malloc ((p.rows.n ? p.rows.n : 1) * sizeof **out);
      if (*out == NULL)
        st = oom (err);
      else
        {
          for (size_t i = 0; i < p.rows.n; i++)
            (*out)[i] = p.rows.v[i].image >= 0 ? -1 - p.rows.v[i].image : p.rows.v[i].token;
          *n_out = p.rows.n;
        }
    }
  prompt_free (&p);
  free (all);
  return st;
}

/* ---- Prefill ------------------------------------------------------------ */

static int
row_eq (const Row *a, const Row *b)
{
  return a->token == b->token && a->image == b->image && a->row == b->row;
}

static void
to_input (const TsrChat *c, const Row *r, TsrLlmInput *in)
{
  if (r->image >= 0)
    {
      in->token = 0;
      in->embd = c->images[r->image].embd + (size_t) r->row * (size_t) c->n_embd;
      in->image = 1;
    }
  else
    {
      in->token = r->token;
      in->embd = NULL;
      in->image = 0;
    }
}

/* Brings the cache to hold the prompt, running only what it lacks, and
 * leaves the logits after its last row. */
/* A chunk of 512 rows takes a minute on a 7B model: progress comes from
 * the layer poll too, as the share of the chunk's layers done. */
typedef struct {
  const TsrChatCallbacks *cb;
  int done, chunk, total, layers, n_layer;
} LayerProgress;

static int
layer_poll (void *user_data)
{
  LayerProgress *p = user_data;
  const TsrChatCallbacks *cb = p->cb;

  /* Polled before each layer: the first poll of a chunk finds none done. */
  if (cb->progress != NULL && p->layers > 0 && p->layers < p->n_layer)
    cb->progress ("prefill", p->done + (int) ((int64_t) p->chunk * p->layers / p->n_layer), p->total,
                  cb->user_data);
  p->layers++;
  return cb->should_abort != NULL ? cb->should_abort (cb->user_data) : 0;
}

static TsrStatus
prefill (TsrChat *c, const RowVec *rows, const TsrChatCallbacks *cb, float *logits, TsrChatTimings *tm,
         TsrError *err)
{
  LayerProgress lp = { cb, 0, 0, 0, 0, (int) tsr_llm_info (c->llm)->n_layer };
  TsrLlmAbort abort_cb = { cb ? layer_poll : NULL, &lp };
  TsrLlmInput in[PREFILL_CHUNK];
  int n = (int) rows->n, common = 0, total;
  double t0;

  if (rows->n > (size_t) c->n_ctx)
    return tsr_error_set (err, TSR_ETOOLARGE, "The conversation would take %zu tokens, past the limit of "
                          "%d. Start a new conversation, or use a lower HD-N for its images.", rows->n,
                          c->n_ctx);
  while (common < c->n_rows && common < n && row_eq (&c->rows[common], &rows->v[common]))
    common++;
  /* The logits come from running the last row, so it runs again. */
  if (common == n)
    common = n - 1;
  cache_rewind (c, common);
  total = n - common;
  if (tm != NULL)
    tm->reused_tokens = common;
  t0 = now_s ();
  for (int done = 0; done < total;)
    {
      int m = total - done < PREFILL_CHUNK ? total - done : PREFILL_CHUNK;
      TsrStatus st;
      if (cb != NULL && cb->progress != NULL)
        cb->progress ("prefill", done, total, cb->user_data);
      lp.done = done;
      lp.chunk = m;
      lp.total = total;
      lp.layers = 0;
      for (int i = 0; i < m; i++)
        to_input (c, &rows->v[common + done + i], &in[i]);
      st = tsr_llm_forward (c->llm, c->state, c->pool, in, m, done + m == total ? logits : NULL, &abort_cb,
                            err);
      if (st != TSR_OK)
        return st;
      memcpy (c->rows + common + done, rows->v + common + done, (size_t) m * sizeof (Row));
      done += m;
      c->n_rows = common + done;
    }
  if (cb != NULL && cb->progress != NULL)
    cb->progress ("prefill", total, total, cb->user_data);
  if (tm != NULL)
    {
      tm->prefill_tokens = total;
      tm->prefill_seconds = now_s () - t0;
    }
  return TSR_OK;
}

/* ---- Answers ------------------------------------------------------------- */

typedef struct {
  int32_t *v;
  size_t   n, cap;
} Ids;

static int
ids_push (Ids *ids, int32_t id)
{
  if (ids->n == ids->cap)
    {
      size_t cap = ids->cap ? 2 * ids->cap : 64;
      int32_t *v = realloc (ids->v, cap * sizeof *v);
      if (v == NULL)
        return 0;
      ids->v = v;
      ids->cap = cap;
    }
  ids->v[ids->n++] = id;
  return 1;
}

/* Decoding as HF's decode(skip_special_tokens=True): unknown, BOS and EOS
 * give nothing; the rest streams through the clean-up. */
typedef struct {
  TsrChat                *c;
  TsrDecoder              dec;
  TsrTextStream           stream;
  const TsrChatCallbacks *cb;
} Out;

static void
out_init (Out *o, TsrChat *c, const TsrChatCallbacks *cb)
{
  o->c = c;
  o->cb = cb;
  tsr_decoder_init (&o->dec, c->tok);
  tsr_text_stream_init (&o->stream, c->im_end_text, strlen (c->im_end_text));
}

static TsrStatus
out_push (Out *o, int32_t id, int final, TsrError *err)
{
  char piece[PIECE_MAX];
  size_t n = 0, n_out;
  const char *text;
  TsrStatus st;

  if (id >= 0 && id != o->c->bos && id != o->c->eos && tsr_tokenizer_type (o->c->tok, id) != TSR_PIECE_UNKNOWN)
    n = tsr_decoder_push (&o->dec, id, piece, sizeof piece);
  if (n > sizeof piece)
    n = sizeof piece;
  if (final)
    {
      size_t m = tsr_decoder_flush (&o->dec, piece + n, sizeof piece - n);
      n += m < sizeof piece - n ? m : sizeof piece - n;
    }
  if ((st = tsr_text_stream_push (&o->stream, piece, n, final, &text, &n_out, err)) != TSR_OK)
    return st;
  if (o->cb != NULL && o->cb->token != NULL && (id >= 0 || n_out > 0))
    o->cb->token (id, text, n_out, o->cb->user_data);
  return TSR_OK;
}

/* The final text: the whole decoding cleaned at once, which the streamed
 * pieces add up to. */
static TsrStatus
final_text (Out *o, char **text, TsrError *err)
{
  *text = dup_n (o->stream.raw ? o->stream.raw : "", o->stream.n_raw);
  if (*text == NULL)
    return oom (err);
  tsr_chat_clean_up (*text, o->stream.n_raw);
  return TSR_OK;
}

typedef struct {
  const TsrGenParams     *p;
  const TsrChatCallbacks *cb;
  const int32_t          *prompt_ids;   /* what HF's input_ids start with: the text path's prompt */
  size_t                  n_prompt_ids;
  float                  *logits;       /* after the prompt */
} Gen;

static int
stopped (const TsrChatCallbacks *cb)
{
  return cb != NULL && cb->should_abort != NULL && cb->should_abort (cb->user_data);
}

static TsrStatus
generate (TsrChat *c, const Gen *g, Ids *ids, TsrChatStop *stop, Out *o, TsrError *err)
{
  TsrLlmAbort abort_cb = { g->cb ? g->cb->should_abort : NULL, g->cb ? g->cb->user_data : NULL };
  TsrSampler *s = NULL;
  TsrStatus st;

  if ((st = tsr_sampler_new (g->p, c->n_vocab, &s, err)) != TSR_OK)
    return st;
  tsr_sampler_accept (s, g->prompt_ids, g->n_prompt_ids);
  *stop = TSR_CHAT_STOP_LENGTH;
  for (int step = 0; step < g->p->max_new_tokens; step++)
    {
      int32_t id;
      TsrLlmInput in = { 0, NULL, 0 };

      if (stopped (g->cb))
        {
          st = tsr_error_set (err, TSR_ECANCELLED, "Stopped.");
          break;
        }
      id = tsr_sampler_next (s, g->logits);
      if (id == c->eos || id == c->im_end)
        {
          *stop = TSR_CHAT_STOP_END;
          break;
        }
      tsr_sampler_accept (s, &id, 1);
      if (!ids_push (ids, id))
        {
          st = oom (err);
          break;
        }
      if ((st = out_push (o, id, 0, err)) != TSR_OK)
        break;
      if (g->cb != NULL && g->cb->progress != NULL)
        g->cb->progress ("generate", step + 1, g->p->max_new_tokens, g->cb->user_data);
      /* The text after an im_end text would be cut off: no need to write it. */
      if (o->stream.cut)
        {
          *stop = TSR_CHAT_STOP_END;
          break;
        }
      if (step + 1 == g->p->max_new_tokens)
        break;
      if (c->n_rows >= c->n_ctx)
        {
          *stop = TSR_CHAT_STOP_CONTEXT;
          break;
        }
      in.token = id;
      if ((st = tsr_llm_forward (c->llm, c->state, c->pool, &in, 1, g->logits, &abort_cb, err)) != TSR_OK)
        break;
      c->rows[c->n_rows].token = id;
      c->rows[c->n_rows].image = -1;
      c->rows[c->n_rows].row = 0;
      c->n_rows++;
    }
  tsr_sampler_free (s);
  return st;
}

/* ---- Beam search --------------------------------------------------------- */

typedef struct {
  double   score;
  int32_t *ids;
  size_t   n;
  int      ended;     /* by a stop id, not by the length limit */
} Hyp;

typedef struct {
  double  score;
  size_t  flat;      /* beam · V + id */
} Cand;

static int
cand_before (const Cand *a, const Cand *b)
{
  return a->score > b->score || (a->score == b->score && a->flat < b->flat);
}

/* BeamHypotheses.add: keeps the B best, in the order they came. */
static int
hyps_add (Hyp *h, int *n_h, int B, double *worst, const int32_t *ids, size_t n, double sum, double len,
          double lp, int ended)
{
  double score = sum / pow (len < 1 ? 1 : len, lp);
  if (*n_h >= B && !(score > *worst))
    return 1;
  h[*n_h].score = score;
  h[*n_h].ids = malloc ((n ? n : 1) * sizeof (int32_t));
  if (h[*n_h].ids == NULL)
    return 0;
  memcpy (h[*n_h].ids, ids, n * sizeof (int32_t));
  h[*n_h].n = n;
  h[*n_h].ended = ended;
  (*n_h)++;
  if (*n_h > B)
    {
      /* The worst goes (the first such on ties, as sorted((s, idx)) does);
       * the next worst becomes the bar. */
      int w0 = 0, w1 = -1;
      for (int i = 1; i < *n_h; i++)
        if (h[i].score < h[w0].score)
          w0 = i;
      for (int i = 0; i < *n_h; i++)
        if (i != w0 && (w1 < 0 || h[i].score < h[w1].score))
          w1 = i;
      *worst = h[w1].score;
      free (h[w0].ids);
      memmove (h + w0, h + w0 + 1, (size_t) (*n_h - w0 - 1) * sizeof *h);
      (*n_h)--;
    }
  else
    *worst = score < *worst ? score : *worst;
  return 1;
}

static TsrStatus
generate_beams (TsrChat *c, const Gen *g, Ids *ids, TsrChatStop *stop, Out *o, int *steps, TsrError *err)
{
  const int B = g->p->n_beams, K = 3 * B;
  const size_t V = c->n_vocab;
  const int P = c->n_rows, max_new = g->p->max_new_tokens;
  /* HF's input_ids: the prompt on the text path, nothing on the image path. */
  const double len0 = (double) g->n_prompt_ids;
  const double lp = g->p->length_penalty;
  TsrLlmAbort abort_cb = { g->cb ? g->cb->should_abort : NULL, g->cb ? g->cb->user_data : NULL };
  TsrLlmState **states = calloc ((size_t) B, sizeof *states), **next_states = calloc ((size_t) B, sizeof *states);
  float *logits = malloc ((size_t) B * V * sizeof *logits), *lp_row = malloc (V * sizeof *lp_row);
  int32_t *gen = malloc ((size_t) B * (size_t) (max_new + 1) * sizeof *gen);
  int32_t *next_gen = malloc ((size_t) B * (size_t) (max_new + 1) * sizeof *gen);
  double *scores = malloc ((size_t) B * sizeof *scores), *next_scores = malloc ((size_t) B * sizeof *scores);
  int *src = malloc ((size_t) B * sizeof *src), *claimed = calloc ((size_t) B, sizeof *claimed);
  Cand *cand = malloc ((size_t) K * sizeof *cand);
  Hyp *hyps = calloc ((size_t) B + 1, sizeof *hyps);
  TsrIdSet seen = { 0 };
  int n_hyps = 0, done = 0, step, n_states = 0;
  double worst = 1e9;
  TsrStatus st = TSR_OK;

  *stop = TSR_CHAT_STOP_LENGTH;
  *steps = 0;
  if (!states || !next_states || !logits || !lp_row || !gen || !next_gen || !scores || !next_scores || !src ||
      !claimed || !cand || !hyps || tsr_id_set_init (&seen, V, err) != TSR_OK)
    {
      st = oom (err);
      goto out;
    }
  /* Every beam starts as the prompt; only beam 0 counts at first. */
  states[0] = c->state;
  n_states = 1;
  for (int b = 1; b < B; b++)
    {
      int n_ctx = P + max_new + 1 < c->n_ctx ? P + max_new + 1 : c->n_ctx;
      if ((st = tsr_llm_state_new_kv (c->llm, n_ctx, c->kv_type, &states[b], err)) != TSR_OK)
        goto out;
      n_states++;
    }
  for (int b = 0; b < B; b++)
    {
      if (b > 0 && (st = tsr_llm_state_copy (states[b], c->state, 0, err)) != TSR_OK)
        goto out;
      memcpy (logits + (size_t) b * V, g->logits, V * sizeof *logits);
      scores[b] = b == 0 ? 0.0 : -1e9;
    }

  for (step = 0; step < max_new && !done; step++)
    {
      int n_cand = 0, n_next = 0;
      double cur_len = len0 + step;

      if (stopped (g->cb))
        {
          st = tsr_error_set (err, TSR_ECANCELLED, "Stopped.");
          goto out;
        }
      for (int b = 0; b < B; b++)
        {
          memcpy (lp_row, logits + (size_t) b * V, V * sizeof *lp_row);
          tsr_logits_log_softmax (lp_row, V);
          tsr_id_set_clear (&seen);
          for (size_t i = 0; i < g->n_prompt_ids; i++)
            tsr_id_set_add (&seen, g->prompt_ids[i]);
          for (int i = 0; i < step; i++)
            tsr_id_set_add (&seen, gen[(size_t) b * (size_t) (max_new + 1) + (size_t) i]);
          tsr_logits_repetition_penalty (lp_row, seen.ids, seen.n, g->p->repetition_penalty);
          for (size_t t = 0; t < V; t++)
            {
              Cand x = { (double) lp_row[t] + scores[b], (size_t) b * V + t };
              int i;
              if (n_cand == K && !cand_before (&x, &cand[K - 1]))
                continue;
              i = n_cand < K ? n_cand++ : K - 1;
              while (i > 0 && cand_before (&x, &cand[i - 1]))
                {
                  cand[i] = cand[i - 1];
                  i--;
                }
              cand[i] = x;
            }
        }
      /* BeamSearchScorer.process. */
      for (int r = 0; r < n_cand && n_next < B; r++)
        {
          int b = (int) (cand[r].flat / V);
          int32_t t = (int32_t) (cand[r].flat % V);
          const int32_t *bg = gen + (size_t) b * (size_t) (max_new + 1);
          if (t == c->eos || t == c->im_end)
            {
              if (r >= B)
                continue;
              if (!hyps_add (hyps, &n_hyps, B, &worst, bg, (size_t) step, cand[r].score, cur_len, lp, 1))
                {
                  st = oom (err);
                  goto out;
                }
              continue;
            }
          memcpy (next_gen + (size_t) n_next * (size_t) (max_new + 1), bg, (size_t) step * sizeof *gen);
          next_gen[(size_t) n_next * (size_t) (max_new + 1) + (size_t) step] = t;
          next_scores[n_next] = cand[r].score;
          src[n_next] = b;
          n_next++;
        }
      if (n_next < B)
        {
          st = tsr_error_set (err, TSR_EINVAL, "Beam search ran out of continuations.");
          goto out;
        }
      if (n_hyps >= B && worst >= cand[0].score / pow (cur_len < 1 ? 1 : cur_len, lp))
        done = 1;

      /* New beam j continues old beam src[j]: the first to claim a state
       * takes it as it is, the others get a copy of its rows after the
       * prompt (every beam shares the prompt rows). */
      memset (claimed, 0, (size_t) B * sizeof *claimed);
      for (int j = 0; j < B; j++)
        next_states[j] = NULL;
      for (int j = 0; j < B; j++)
        if (!claimed[src[j]])
          {
            claimed[src[j]] = 1;
            next_states[j] = states[src[j]];
          }
      for (int j = 0, free_i = 0; j < B; j++)
        if (next_states[j] == NULL)
          {
            while (claimed[free_i])
              free_i++;
            claimed[free_i] = 1;
            next_states[j] = states[free_i];
            tsr_llm_state_rewind (next_states[j], P);
            if ((st = tsr_llm_state_copy (next_states[j], states[src[j]], P, err)) != TSR_OK)
              goto out;
          }
      memcpy (states, next_states, (size_t) B * sizeof *states);
      memcpy (gen, next_gen, (size_t) B * (size_t) (max_new + 1) * sizeof *gen);
      memcpy (scores, next_scores, (size_t) B * sizeof *scores);
      *steps = step + 1;
      if (g->cb != NULL && g->cb->progress != NULL)
        g->cb->progress ("generate", step + 1, max_new, g->cb->user_data);
      if (done || step + 1 == max_new)
        continue;
      if (tsr_llm_state_pos (states[0]) >= c->n_ctx)
        {
          *stop = TSR_CHAT_STOP_CONTEXT;
          break;
        }
      for (int b = 0; b < B; b++)
        {
          TsrLlmInput in = { gen[(size_t) b * (size_t) (max_new + 1) + (size_t) step], NULL, 0 };
          if ((st = tsr_llm_forward (c->llm, states[b], c->pool, &in, 1, logits + (size_t) b * V, &abort_cb,
                                     err)) != TSR_OK)
            goto out;
        }
    }
  /* BeamSearchScorer.finalize: unless done, the running beams compete too. */
  if (!done)
    for (int b = 0; b < B; b++)
      if (!hyps_add (hyps, &n_hyps, B, &worst, gen + (size_t) b * (size_t) (max_new + 1), (size_t) *steps,
                     scores[b], len0 + *steps, lp, 0))
        {
          st = oom (err);
          goto out;
        }
  if (n_hyps > 0)
    {
      /* sorted(key=score)[-1]: the last of the best on ties. */
      int best = 0;
      for (int i = 1; i < n_hyps; i++)
        if (hyps[i].score >= hyps[best].score)
          best = i;
      for (size_t i = 0; i < hyps[best].n; i++)
        {
          if (!ids_push (ids, hyps[best].ids[i]))
            {
              st = oom (err);
              goto out;
            }
          if ((st = out_push (o, hyps[best].ids[i], 0, err)) != TSR_OK)
            goto out;
        }
      if (hyps[best].ended)
        *stop = TSR_CHAT_STOP_END;
    }

out:
  /* The session keeps its own state object, back at the prompt; the
   * answer's tokens are prefilled with the next question. */
  if (states != NULL)
    for (int b = 0; b < n_states; b++)
      if (states[b] != c->state)
        tsr_llm_state_free (states[b]);
  tsr_llm_state_rewind (c->state, P);
  c->n_rows = tsr_llm_state_pos (c->state) < P ? tsr_llm_state_pos (c->state) : P;
  for (int i = 0; i < n_hyps; i++)
    free (hyps[i].ids);
  tsr_id_set_fini (&seen);
  free (states);
  free (next_states);
  free (logits);
  free (lp_row);
  free (gen);
  free (next_gen);
  free (scores);
  free (next_scores);
  free (src);
  free (claimed);
  free (cand);
  free (hyps);
  return st;
}

/* ---- Questions ------------------------------------------------------------ */

static TsrStatus
push_turn (TsrChat *c, const char *question, const char *answer, int n_images, TsrError *err)
{
  if (c->n_turns == c->cap_turns)
    {
      int cap = c->cap_turns ? 2 * c->cap_turns : 8;
      Turn *v = realloc (c->turns, (size_t) cap * sizeof *v);
      if (v == NULL)
        return oom (err);
      c->turns = v;
      c->cap_turns = cap;
    }
  c->turns[c->n_turns].question = strdup (question);
  c->turns[c->n_turns].answer = strdup (answer);
  c->turns[c->n_turns].n_images = n_images;
  if (c->turns[c->n_turns].question == NULL || c->turns[c->n_turns].answer == NULL)
    {
      free (c->turns[c->n_turns].question);
      free (c->turns[c->n_turns].answer);
      return oom (err);
    }
  c->n_turns++;
  return TSR_OK;
}

/* Encodes the question's images and prefills its prompt. On success the
 * images are part of the conversation (the caller forgets them on a
 * later failure) and *prompt_ids holds the text path's prompt. */
static TsrStatus
prepare (TsrChat *c, const char *question, const TsrChatImage *images, int n_images,
         const TsrChatCallbacks *cb, float *logits, TsrChatTimings *tm, Prompt *p, TsrError *err)
{
  int *all = NULL;
  TsrStatus st;

  memset (p, 0, sizeof *p);
  if ((st = check_question (question, n_images, err)) != TSR_OK ||
      (st = add_images (c, images, n_images, cb, tm ? &tm->encode_seconds : NULL, err)) != TSR_OK)
    return st;
  all = malloc ((size_t) (c->n_images + 1) * sizeof *all);
  if (all == NULL)
    return oom (err);
  for (int i = 0; i < c->n_images; i++)
    all[i] = c->images[i].n_rows;
  st = build_prompt (c, question, all, c->n_images, p, err);
  free (all);
  if (st == TSR_OK)
    st = prefill (c, &p->rows, cb, logits, tm, err);
  return st;
}

TsrStatus
tsr_chat_logits (TsrChat *c, const char *question, const TsrChatImage *images, int n_images,
                 const TsrChatCallbacks *cb, float *logits, TsrError *err)
{
  int n_before = c->n_images;
  Prompt p;
  TsrStatus st = prepare (c, question, images, n_images, cb, logits, NULL, &p, err);
  prompt_free (&p);
  forget_images (c, n_before);
  return st;
}

TsrStatus
tsr_chat_ask (TsrChat *c, const char *question, const TsrChatImage *images, int n_images,
              const TsrGenParams *params, const TsrChatCallbacks *cb, TsrChatAnswer *answer, TsrError *err)
{
  int n_before = c->n_images, steps = 0;
  int32_t *prompt_ids = NULL;
  size_t n_prompt_ids = 0;
  float *logits = NULL;
  TsrChatTimings tm;
  Ids ids = { 0 };
  Prompt p;
  Out o;
  Gen g;
  double t0;
  TsrStatus st;
  char *text = NULL;

  memset (answer, 0, sizeof *answer);
  memset (&tm, 0, sizeof tm);
  memset (&p, 0, sizeof p);
  out_init (&o, c, cb);
  if ((st = tsr_gen_check_params (params, err)) != TSR_OK)
    goto fail;
  logits = malloc (c->n_vocab * sizeof *logits);
  if (logits == NULL)
    {
      st = oom (err);
      goto fail;
    }
  if ((st = prepare (c, question, images, n_images, cb, logits, &tm, &p, err)) != TSR_OK)
    goto fail;
  /* On the text path HF's input_ids start as the prompt: the repetition
   * penalty (and beam length) counts it; with images they start empty. */
  if (!p.image_path)
    {
      prompt_ids = malloc (p.rows.n * sizeof *prompt_ids);
      if (prompt_ids == NULL)
        {
          st = oom (err);
          goto fail;
        }
      for (size_t i = 0; i < p.rows.n; i++)
        prompt_ids[i] = p.rows.v[i].token;
      n_prompt_ids = p.rows.n;
    }
  g.p = params;
  g.cb = cb;
  g.prompt_ids = prompt_ids;
  g.n_prompt_ids = n_prompt_ids;
  g.logits = logits;
  t0 = now_s ();
  if (params->mode == TSR_GEN_BEAM && params->n_beams > 1)
    st = generate_beams (c, &g, &ids, &answer->stop, &o, &steps, err);
  else
    {
      st = generate (c, &g, &ids, &answer->stop, &o, err);
      steps = (int) ids.n;
    }
  if (st != TSR_OK)
    goto fail;
  if ((st = out_push (&o, -1, 1, err)) != TSR_OK || (st = final_text (&o, &text, err)) != TSR_OK)
    goto fail;
  tm.decode_tokens = steps;
  tm.decode_seconds = now_s () - t0;
  if ((st = push_turn (c, question, text, n_images, err)) != TSR_OK)
    goto fail;

  tm.prefill_tokens_per_second = tm.prefill_seconds > 0 ? tm.prefill_tokens / tm.prefill_seconds : 0;
  tm.decode_tokens_per_second = tm.decode_seconds > 0 ? tm.decode_tokens / tm.decode_seconds : 0;
  answer->text = text;
  answer->ids = ids.v;
  answer->n_ids = ids.n;
  answer->timings = tm;
  free (logits);
  free (prompt_ids);
  prompt_free (&p);
  tsr_text_stream_fini (&o.stream);
  return TSR_OK;

fail:
  /* The conversation is as it was; rows of this prompt that made it into
   * the cache are still right for it, unless they show its images. */
  forget_images (c, n_before);
  free (text);
  free (ids.v);
  free (logits);
  free (prompt_ids);
  prompt_free (&p);
  tsr_text_stream_fini (&o.stream);
  memset (answer, 0, sizeof *answer);
  return st;
}

TsrStatus
tsr_chat_add_turn (TsrChat *c, const char *question, const TsrChatImage *images, int n_images,
                   const char *answer, TsrError *err)
{
  int n_before = c->n_images;
  TsrStatus st;

  if (answer == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No answer was given.");
  if ((st = check_question (question, n_images, err)) != TSR_OK ||
      (st = add_images (c, images, n_images, NULL, NULL, err)) != TSR_OK ||
      (st = push_turn (c, question, answer, n_images, err)) != TSR_OK)
    forget_images (c, n_before);
  return st;
}
