/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-markdown.c — the model's answers, Markdown, as tagged text in a
 * GtkTextBuffer.
 *
 * A streaming answer is re-rendered from scratch several times a second,
 * so this is a small one-pass renderer rather than a full CommonMark
 * implementation: blocks are recognised line by line, then each
 * paragraph's inline markup is resolved with CommonMark's delimiter
 * rules (which is what keeps snake_case plain and leaves an unclosed `**`
 * literal). The whole text and a list of (tag, start, end) spans are
 * built first and put into the buffer in one go.
 *
 * While an answer streams in, its prefix renders as what it is so far:
 * an unclosed ``` is a code block to the end, an unclosed ** or ` shows
 * literally until its closer arrives, and a table is plain text until
 * its delimiter row (|---|---|) is complete.
 *
 * Not supported, on purpose: setext headings (a `---` under a line is a
 * rule), indented code blocks (models fence their code, and indentation
 * usually means a nested list), HTML, images, reference links. A link
 * shows its text underlined; its address is dropped.
 */
#define G_LOG_DOMAIN "tessera-markdown"

#include "config.h"

#include <string.h>

#include "tessera-markdown.h"

/* In creation order, which is also priority order: a list's margin
 * overrides the code block's and the quote's own padding. */
enum {
  TAG_GAP,
  TAG_H1, TAG_H2, TAG_H3, TAG_H4, TAG_H5, TAG_H6,
  TAG_CODE_BLOCK,
  TAG_QUOTE,
  TAG_TABLE,
  TAG_TABLE_HEADER,
  TAG_RULE,
  TAG_LIST0, TAG_LIST1, TAG_LIST2, TAG_LIST3, TAG_LIST4, TAG_LIST5,
  TAG_BULLET,
  TAG_NUMBER,
  TAG_BOLD,
  TAG_ITALIC,
  TAG_CODE,
  TAG_LINK,
  N_TAGS
};

#define N_LIST_TAGS (TAG_LIST5 - TAG_LIST0 + 1)

static const char *const tag_names[N_TAGS] = {
  "md-gap",
  "md-h1", "md-h2", "md-h3", "md-h4", "md-h5", "md-h6",
  "md-code-block",
  "md-quote",
  "md-table",
  "md-table-header",
  "md-rule",
  "md-list-0", "md-list-1", "md-list-2", "md-list-3", "md-list-4", "md-list-5",
  "md-bullet",
  "md-number",
  "md-bold",
  "md-italic",
  "md-code",
  "md-link",
};

/* List geometry in pixels. Tags cannot measure the marker, so the hanging
 * indent is an estimate for the default font: "• " and "12. ". */
#define LIST_MARGIN    10
#define LIST_STEP      22
#define BULLET_HANG    12
#define NUMBER_HANG    20
#define RULE_WIDTH     24
#define MAX_LINK_BYTES 2048
#define MAX_LEVELS     32
/* GtkTextBuffer walks a line's tag toggles to add one, so thousands of
 * spans on one line (a model stuck repeating "**a** ") cost quadratic
 * time; past this many in a paragraph the rest shows unformatted. */
#define MAX_INLINE_SPANS 400

/* ==== Tags ============================================================== */

static void
style_tag (GtkTextTag *tag,
           int         id)
{
  static const double heading_scale[] = { 1.5, 1.3, 1.15, 1.05, 1.0, 0.95 };
  /* Grey at low alpha shades the background in light and dark themes alike. */
  const GdkRGBA shade = { 0.5, 0.5, 0.5, 0.16 };
  const GdkRGBA rule = { 0.5, 0.5, 0.5, 0.8 };

  switch (id)
    {
    case TAG_GAP:
      /* The blank line between blocks: half a line is enough air. */
      g_object_set (tag, "scale", 0.5, NULL);
      break;
    case TAG_H1: case TAG_H2: case TAG_H3: case TAG_H4: case TAG_H5: case TAG_H6:
      g_object_set (tag,
                    "weight", PANGO_WEIGHT_BOLD,
                    "scale", heading_scale[id - TAG_H1],
                    "pixels-above-lines", id <= TAG_H2 ? 6 : 3,
                    "pixels-below-lines", 2,
                    NULL);
      break;
    case TAG_CODE_BLOCK:
      /* Wrapped at any character, not left unwrapped: a GtkTextView does
       * not grow for a line it may not wrap, it cuts it off. */
      g_object_set (tag,
                    "family", "monospace",
                    "paragraph-background-rgba", &shade,
                    "wrap-mode", GTK_WRAP_CHAR,
                    "left-margin", 8,
                    NULL);
      break;
    case TAG_QUOTE:
      g_object_set (tag, "style", PANGO_STYLE_ITALIC, "left-margin", 16, NULL);
      break;
    case TAG_TABLE:
      g_object_set (tag, "family", "monospace", "wrap-mode", GTK_WRAP_CHAR, NULL);
      break;
    case TAG_TABLE_HEADER:
    case TAG_BOLD:
      g_object_set (tag, "weight", PANGO_WEIGHT_BOLD, NULL);
      break;
    case TAG_RULE:
      g_object_set (tag, "foreground-rgba", &rule, NULL);
      break;
    case TAG_LIST0: case TAG_LIST1: case TAG_LIST2:
    case TAG_LIST3: case TAG_LIST4: case TAG_LIST5:
      /* The margin is the text's column; the marker hangs to its left. */
      g_object_set (tag,
                    "left-margin", LIST_MARGIN + NUMBER_HANG + (id - TAG_LIST0) * LIST_STEP,
                    NULL);
      break;
    case TAG_BULLET:
      g_object_set (tag, "indent", -BULLET_HANG, NULL);
      break;
    case TAG_NUMBER:
      g_object_set (tag, "indent", -NUMBER_HANG, NULL);
      break;
    case TAG_ITALIC:
      g_object_set (tag, "style", PANGO_STYLE_ITALIC, NULL);
      break;
    case TAG_CODE:
      g_object_set (tag, "family", "monospace", "background-rgba", &shade, NULL);
      break;
    case TAG_LINK:
      g_object_set (tag, "underline", PANGO_UNDERLINE_SINGLE, NULL);
      break;
    default:
      g_assert_not_reached ();
    }
}

/* Looked up by name on every render rather than cached, so that a tag
 * table shared by several buffers, or edited by someone else, is fine. */
static void
lookup_tags (GtkTextBuffer *buffer,
             GtkTextTag   **tags)
{
  GtkTextTagTable *table = gtk_text_buffer_get_tag_table (buffer);

  for (int i = 0; i < N_TAGS; i++)
    {
      GtkTextTag *tag = gtk_text_tag_table_lookup (table, tag_names[i]);
      if (tag == NULL)
        {
          tag = gtk_text_tag_new (tag_names[i]);
          style_tag (tag, i);
          gtk_text_tag_table_add (table, tag);
          g_object_unref (tag);
        }
      if (tags != NULL)
        tags[i] = tag;
    }
}

void
tessera_markdown_ensure_tags (GtkTextBuffer *buffer)
{
  g_return_if_fail (GTK_IS_TEXT_BUFFER (buffer));
  lookup_tags (buffer, NULL);
}

/* ==== Output: text plus tag spans ======================================= */

typedef struct {
  int   tag;
  glong start, end;   /* in characters */
} Span;

typedef struct {
  GString *text;
  glong    chars;
  GArray  *spans;
} Out;

static void
out_init (Out *o)
{
  o->text = g_string_new (NULL);
  o->chars = 0;
  o->spans = g_array_new (FALSE, FALSE, sizeof (Span));
}

static void
out_clear (Out *o)
{
  g_string_free (o->text, TRUE);
  g_array_unref (o->spans);
}

static void
out_append (Out        *o,
            const char *s,
            gsize       len)
{
  g_string_append_len (o->text, s, len);
  o->chars += g_utf8_strlen (s, len);
}

static void
out_append_str (Out        *o,
                const char *s)
{
  out_append (o, s, strlen (s));
}

static void
out_repeat (Out        *o,
            const char *s,
            int         n)
{
  for (int i = 0; i < n; i++)
    out_append_str (o, s);
}

static void
out_span (Out  *o,
          int   tag,
          glong start,
          glong end)
{
  Span s = { tag, start, end };
  if (end > start)
    g_array_append_val (o->spans, s);
}

static void
out_append_out (Out       *o,
                const Out *src)
{
  glong base = o->chars;

  out_append (o, src->text->str, src->text->len);
  for (guint i = 0; i < src->spans->len; i++)
    {
      const Span *s = &g_array_index (src->spans, Span, i);
      out_span (o, s->tag, base + s->start, base + s->end);
    }
}

/* Columns in a monospace grid: CJK and other wide characters take two. */
static int
display_width (const char *s,
               gsize       len)
{
  const char *end = s + len;
  int w = 0;

  for (const char *p = s; p < end; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (g_unichar_iszerowidth (c))
        continue;
      w += g_unichar_iswide (c) ? 2 : 1;
    }
  return w;
}

/* ==== Inline markup ===================================================== */

typedef enum {
  TOK_TEXT,      /* bytes shown as they are */
  TOK_CODE,      /* a code span's content */
  TOK_DELIM,     /* a run of '*' or '_' */
  TOK_BRACKET,   /* '[' */
  TOK_LINK_END,  /* "](url)", shown as nothing */
} TokKind;

typedef struct {
  TokKind     kind;
  const char *p;
  gsize       len;
  char        ch;
  int         run;       /* the delimiter run's length as written */
  int         left;      /* its characters not used up as emphasis */
  gboolean    can_open, can_close;
  gboolean    matched;   /* a bracket that opens a link */
  int         prev, next;
  /* Where, in the output, emphasis closed here ends and opened here starts:
   * a run gives its leftmost characters to closing and its rightmost to
   * opening, so what is left over sits between the two. */
  glong       close_pos, open_pos;
} Tok;

typedef struct {
  int tag;
  int open_tok, close_tok;
} Emph;

typedef struct {
  gsize pos;
  int   len;
} Run;

typedef struct {
  const char *s;
  gsize       len;
  GArray     *toks;
  GArray     *emphs;
  GArray     *ticks;      /* Run: every backtick run, for finding closers */
  guint       tick_cursor[17];
} Inline;

static gboolean
is_ascii_punct (char c)
{
  return c > 0 && g_ascii_ispunct (c);
}

static gunichar
char_before (const Inline *in,
             const char   *p)
{
  if (p <= in->s)
    return ' ';
  return g_utf8_get_char (g_utf8_find_prev_char (in->s, p));
}

static gunichar
char_at (const Inline *in,
         const char   *p)
{
  if (p >= in->s + in->len)
    return ' ';
  return g_utf8_get_char (p);
}

static void
add_tok (Inline     *in,
         TokKind     kind,
         const char *p,
         gsize       len)
{
  Tok t = { 0 };

  t.kind = kind;
  t.p = p;
  t.len = len;
  t.prev = t.next = -1;
  g_array_append_val (in->toks, t);
}

/* The position of the next backtick run exactly `n` long starting at or
 * after `from`, or -1. Openers arrive in increasing order, so a cursor per
 * length keeps a row of unmatched backticks from going quadratic. */
static gssize
find_tick_closer (Inline *in,
                  gsize   from,
                  int     n)
{
  guint i = n < (int) G_N_ELEMENTS (in->tick_cursor) ? in->tick_cursor[n] : 0;

  for (; i < in->ticks->len; i++)
    {
      const Run *r = &g_array_index (in->ticks, Run, i);
      if (r->pos >= from && r->len == n)
        break;
    }
  if (n < (int) G_N_ELEMENTS (in->tick_cursor))
    in->tick_cursor[n] = i;
  if (i == in->ticks->len)
    return -1;
  return g_array_index (in->ticks, Run, i).pos;
}

static void
scan_ticks (Inline *in)
{
  gsize i = 0;

  while (i < in->len)
    {
      if (in->s[i] == '`')
        {
          Run r = { i, 0 };
          while (i < in->len && in->s[i] == '`')
            i++, r.len++;
          g_array_append_val (in->ticks, r);
        }
      else
        i++;
    }
}

static void
tokenize (Inline *in)
{
  const char *s = in->s;
  const char *end = s + in->len;
  const char *text = s;
  const char *p = s;
  GArray *brackets = g_array_new (FALSE, FALSE, sizeof (int));

#define FLUSH_TEXT() G_STMT_START {                          \
    if (p > text)                                            \
      add_tok (in, TOK_TEXT, text, p - text);                \
  } G_STMT_END

  while (p < end)
    {
      char c = *p;

      if (c == '\\' && p + 1 < end && (is_ascii_punct (p[1]) || p[1] == '\n'))
        {
          FLUSH_TEXT ();
          add_tok (in, TOK_TEXT, p + 1, 1);
          p += 2;
          text = p;
        }
      else if (c == '`')
        {
          const char *q = p;
          gssize close;
          int n;

          while (q < end && *q == '`')
            q++;
          n = q - p;
          close = find_tick_closer (in, q - s, n);
          if (close < 0)
            {
              /* Unclosed: the backticks are plain text. */
              p = q;
              continue;
            }
          FLUSH_TEXT ();
          {
            const char *a = q;
            const char *b = s + close;
            gboolean all_space = TRUE;

            for (const char *x = a; x < b; x++)
              if (*x != ' ' && *x != '\n')
                {
                  all_space = FALSE;
                  break;
                }
            if (!all_space && b - a >= 2 && (*a == ' ' || *a == '\n') && (b[-1] == ' ' || b[-1] == '\n'))
              a++, b--;
            add_tok (in, TOK_CODE, a, b - a);
          }
          p = s + close + n;
          text = p;
        }
      else if (c == '*' || c == '_')
        {
          const char *q = p;
          gunichar before, after;
          gboolean lf, rf, bpunct, apunct;
          Tok *t;

          FLUSH_TEXT ();
          while (q < end && *q == c)
            q++;
          before = char_before (in, p);
          after = char_at (in, q);
          bpunct = g_unichar_ispunct (before);
          apunct = g_unichar_ispunct (after);
          lf = !g_unichar_isspace (after) &&
               (!apunct || g_unichar_isspace (before) || bpunct);
          rf = !g_unichar_isspace (before) &&
               (!bpunct || g_unichar_isspace (after) || apunct);
          add_tok (in, TOK_DELIM, p, q - p);
          t = &g_array_index (in->toks, Tok, in->toks->len - 1);
          t->ch = c;
          t->run = t->left = q - p;
          if (c == '*')
            {
              t->can_open = lf;
              t->can_close = rf;
            }
          else
            {
              /* Keeps snake_case_names plain. */
              t->can_open = lf && (!rf || bpunct);
              t->can_close = rf && (!lf || apunct);
            }
          p = q;
          text = p;
        }
      else if (c == '[')
        {
          int idx;

          FLUSH_TEXT ();
          idx = in->toks->len;
          add_tok (in, TOK_BRACKET, p, 1);
          g_array_append_val (brackets, idx);
          p++;
          text = p;
        }
      else if (c == ']' && brackets->len > 0)
        {
          int open = g_array_index (brackets, int, brackets->len - 1);
          const char *close = NULL;

          g_array_set_size (brackets, brackets->len - 1);
          if (p + 1 < end && p[1] == '(')
            {
              const char *limit = MIN (end, p + 2 + MAX_LINK_BYTES);
              for (const char *x = p + 2; x < limit && *x != '\n'; x++)
                if (*x == ')')
                  {
                    close = x;
                    break;
                  }
            }
          if (close == NULL)
            {
              p++;
              continue;
            }
          FLUSH_TEXT ();
          {
            Emph e = { TAG_LINK, open, in->toks->len };
            g_array_index (in->toks, Tok, open).matched = TRUE;
            add_tok (in, TOK_LINK_END, p, 0);
            g_array_append_val (in->emphs, e);
          }
          p = close + 1;
          text = p;
        }
      else
        p++;
    }
  FLUSH_TEXT ();
#undef FLUSH_TEXT
  g_array_unref (brackets);
}

static void
unlink_delim (Tok *t,
              int  i,
              int *head)
{
  if (t[i].prev >= 0)
    t[t[i].prev].next = t[i].next;
  else
    *head = t[i].next;
  if (t[i].next >= 0)
    t[t[i].next].prev = t[i].prev;
}

/* CommonMark's "process emphasis": each closer, left to right, takes the
 * nearest compatible opener; `bottom` remembers, per kind of closer, below
 * which token no opener can be found, so the search stays linear. */
static void
process_emphasis (Inline *in)
{
  Tok *t = (Tok *) in->toks->data;
  int n = in->toks->len;
  int head = -1, last = -1;
  int bottom[2][3][2];
  int closer;

  for (int i = 0; i < n; i++)
    if (t[i].kind == TOK_DELIM)
      {
        t[i].prev = last;
        if (last >= 0)
          t[last].next = i;
        else
          head = i;
        last = i;
      }
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < 3; b++)
      bottom[a][b][0] = bottom[a][b][1] = -1;

  closer = head;
  while (closer >= 0)
    {
      Tok *c = &t[closer];
      int *bot;
      int opener;
      gboolean found = FALSE;

      if (!c->can_close)
        {
          closer = c->next;
          continue;
        }
      bot = &bottom[c->ch == '_'][c->run % 3][c->can_open ? 1 : 0];
      for (opener = c->prev; opener >= 0 && opener > *bot; opener = t[opener].prev)
        {
          Tok *o = &t[opener];
          if (o->ch == c->ch && o->can_open)
            {
              gboolean odd = (c->can_open || o->can_close) &&
                             (o->run + c->run) % 3 == 0 &&
                             !(o->run % 3 == 0 && c->run % 3 == 0);
              if (!odd)
                {
                  found = TRUE;
                  break;
                }
            }
        }

      if (found)
        {
          Tok *o = &t[opener];
          int use = (o->left >= 2 && c->left >= 2) ? 2 : 1;
          Emph e = { use == 2 ? TAG_BOLD : TAG_ITALIC, opener, closer };

          g_array_append_val (in->emphs, e);
          o->left -= use;
          c->left -= use;
          /* Delimiters between the pair can no longer match anything. */
          while (o->next != closer)
            unlink_delim (t, o->next, &head);
          if (o->left == 0)
            unlink_delim (t, opener, &head);
          if (c->left == 0)
            {
              int next = c->next;
              unlink_delim (t, closer, &head);
              closer = next;
            }
        }
      else
        {
          int next = c->next;
          *bot = closer - 1;
          if (!c->can_open)
            unlink_delim (t, closer, &head);
          closer = next;
        }
    }
}

static void
inline_render (Out        *out,
               const char *s,
               gsize       len)
{
  Inline in = { 0 };
  int n_spans = 0;
  Tok *t;

  if (len == 0)
    return;
  in.s = s;
  in.len = len;
  in.toks = g_array_new (FALSE, FALSE, sizeof (Tok));
  in.emphs = g_array_new (FALSE, FALSE, sizeof (Emph));
  in.ticks = g_array_new (FALSE, FALSE, sizeof (Run));
  scan_ticks (&in);
  tokenize (&in);
  process_emphasis (&in);

  t = (Tok *) in.toks->data;
  for (guint i = 0; i < in.toks->len; i++)
    switch (t[i].kind)
      {
      case TOK_TEXT:
        out_append (out, t[i].p, t[i].len);
        break;
      case TOK_CODE:
        {
          glong start = out->chars;
          const char *a = t[i].p;
          const char *end = a + t[i].len;
          /* A code span's line breaks are spaces. */
          while (a < end)
            {
              const char *nl = memchr (a, '\n', end - a);
              const char *stop = nl != NULL ? nl : end;
              out_append (out, a, stop - a);
              if (nl != NULL)
                out_append (out, " ", 1);
              a = stop + (nl != NULL);
            }
          if (n_spans++ < MAX_INLINE_SPANS)
            out_span (out, TAG_CODE, start, out->chars);
        }
        break;
      case TOK_DELIM:
        t[i].close_pos = out->chars;
        for (int k = 0; k < t[i].left; k++)
          out_append (out, &t[i].ch, 1);
        t[i].open_pos = out->chars;
        break;
      case TOK_BRACKET:
        t[i].close_pos = out->chars;
        if (!t[i].matched)
          out_append (out, "[", 1);
        t[i].open_pos = out->chars;
        break;
      case TOK_LINK_END:
        t[i].close_pos = t[i].open_pos = out->chars;
        break;
      default:
        g_assert_not_reached ();
      }

  for (guint i = 0; i < in.emphs->len && n_spans++ < MAX_INLINE_SPANS; i++)
    {
      const Emph *e = &g_array_index (in.emphs, Emph, i);
      out_span (out, e->tag, t[e->open_tok].open_pos, t[e->close_tok].close_pos);
    }

  g_array_unref (in.toks);
  g_array_unref (in.emphs);
  g_array_unref (in.ticks);
}

/* ==== Lines ============================================================= */

typedef struct {
  const char *p;
  gsize       len;
} Line;

static gboolean
is_blank (const char *s,
          gsize       n)
{
  for (gsize i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t')
      return FALSE;
  return TRUE;
}

/* Leading whitespace in columns (tabs to multiples of 4), and its bytes. */
static int
leading_indent (const char *s,
                gsize       n,
                gsize      *bytes)
{
  int col = 0;
  gsize i = 0;

  for (; i < n && (s[i] == ' ' || s[i] == '\t'); i++)
    col = s[i] == '\t' ? (col / 4 + 1) * 4 : col + 1;
  if (bytes != NULL)
    *bytes = i;
  return col;
}

static gsize
rtrim (const char *s,
       gsize       n)
{
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  return n;
}

/* The length of an opening code fence (``` or ~~~), or 0. */
static int
fence_open (const char *s,
            gsize       n,
            char       *fch)
{
  gsize k = 0;

  if (n < 3 || (s[0] != '`' && s[0] != '~'))
    return 0;
  while (k < n && s[k] == s[0])
    k++;
  if (k < 3)
    return 0;
  /* "```js```" on one line is inline code, not a fence. */
  if (s[0] == '`' && memchr (s + k, '`', n - k) != NULL)
    return 0;
  *fch = s[0];
  return k;
}

static gboolean
fence_close (const char *s,
             gsize       n,
             char        fch,
             int         flen)
{
  gsize k = 0;

  while (k < n && s[k] == fch)
    k++;
  return (int) k >= flen && is_blank (s + k, n - k);
}

/* The level of an ATX heading (1 to 6) and where its text starts, or 0. */
static int
heading_level (const char *s,
               gsize       n,
               gsize      *text)
{
  gsize k = 0;

  while (k < n && s[k] == '#')
    k++;
  if (k == 0 || k > 6 || (k < n && s[k] != ' ' && s[k] != '\t'))
    return 0;
  *text = k;
  return k;
}

static gboolean
is_rule (const char *s,
         gsize       n)
{
  int count = 0;

  if (n == 0 || (s[0] != '-' && s[0] != '*' && s[0] != '_'))
    return FALSE;
  for (gsize i = 0; i < n; i++)
    {
      if (s[i] == s[0])
        count++;
      else if (s[i] != ' ' && s[i] != '\t')
        return FALSE;
    }
  return count >= 3;
}

typedef struct {
  gboolean ordered;
  char     delim;     /* the bullet, or '.' / ')' after a number */
  gint64   number;
  gsize    len;       /* the marker and the spaces after it */
} Marker;

static gboolean
list_marker (const char *s,
             gsize       n,
             Marker     *m)
{
  gsize k = 0;

  if (n == 0)
    return FALSE;
  if (s[0] == '-' || s[0] == '*' || s[0] == '+')
    {
      m->ordered = FALSE;
      m->delim = s[0];
      m->number = 0;
      k = 1;
    }
  else
    {
      m->number = 0;
      while (k < n && k < 9 && g_ascii_isdigit (s[k]))
        m->number = m->number * 10 + (s[k++] - '0');
      if (k == 0 || k >= n || (s[k] != '.' && s[k] != ')'))
        return FALSE;
      m->ordered = TRUE;
      m->delim = s[k++];
    }
  if (k < n && s[k] != ' ' && s[k] != '\t')
    return FALSE;
  while (k < n && (s[k] == ' ' || s[k] == '\t'))
    k++;
  m->len = k;
  return TRUE;
}

/* Splits a table row into cells at unescaped pipes; the outer pipes are
 * optional. Returns whether the row had a pipe at all. */
static gboolean
split_cells (const char *s,
             gsize       n,
             GArray     *cells)
{
  gboolean pipe = FALSE;
  gsize start, i;

  g_array_set_size (cells, 0);
  n = rtrim (s, n);
  i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t'))
    i++;
  if (i < n && s[i] == '|')
    {
      pipe = TRUE;
      i++;
    }
  start = i;
  for (; i <= n; i++)
    {
      if (i < n && s[i] == '\\' && i + 1 < n)
        {
          i++;
          continue;
        }
      if (i == n || s[i] == '|')
        {
          Line cell;
          gsize a = start, b = i;

          if (i < n)
            pipe = TRUE;
          /* The trailing pipe ends the row rather than opening a cell. */
          if (i == n && a == n && cells->len > 0)
            break;
          while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
          b = a + rtrim (s + a, b - a);
          cell.p = s + a;
          cell.len = b - a;
          g_array_append_val (cells, cell);
          start = i + 1;
        }
    }
  return pipe;
}

typedef enum { ALIGN_LEFT, ALIGN_CENTER, ALIGN_RIGHT } Align;

/* A delimiter row (|---|:--:|) with exactly `columns` cells; fills in
 * the alignments. */
static gboolean
parse_separator (const Line *line,
                 int         columns,
                 GArray     *cells,
                 Align      *align)
{
  if (!split_cells (line->p, line->len, cells) || (int) cells->len != columns)
    return FALSE;
  for (guint c = 0; c < cells->len; c++)
    {
      const Line *cell = &g_array_index (cells, Line, c);
      gsize a = 0, b = cell->len;
      gboolean left = FALSE, right = FALSE;

      if (a < b && cell->p[a] == ':')
        left = TRUE, a++;
      if (b > a && cell->p[b - 1] == ':')
        right = TRUE, b--;
      if (a == b)
        return FALSE;
      for (gsize k = a; k < b; k++)
        if (cell->p[k] != '-')
          return FALSE;
      if (align != NULL)
        align[c] = left && right ? ALIGN_CENTER : right ? ALIGN_RIGHT : ALIGN_LEFT;
    }
  return TRUE;
}

/* Whether lines[i] is a table's header row: only once the delimiter row
 * under it is complete, so a table still arriving shows as text. */
static gboolean
table_start (const Line *lines,
             int         n_lines,
             int         i,
             GArray     *cells)
{
  int columns;

  if (i + 1 >= n_lines || memchr (lines[i].p, '|', lines[i].len) == NULL)
    return FALSE;
  if (!split_cells (lines[i].p, lines[i].len, cells))
    return FALSE;
  columns = cells->len;
  return parse_separator (&lines[i + 1], columns, cells, NULL);
}

/* ==== Blocks ============================================================ */

typedef enum { PARA_NONE, PARA_TEXT, PARA_ITEM, PARA_QUOTE } ParaKind;

typedef struct {
  int      marker_indent;
  gboolean ordered;
  char     delim;
  gint64   next_number;
} Level;

typedef struct {
  Out         out;
  const Line *lines;
  int         n_lines;
  GArray     *cells;       /* scratch for table rows */

  Level       levels[MAX_LEVELS];
  int         n_levels;

  gboolean    started;     /* a block has been written */
  gboolean    blank;       /* a blank line since the last block */

  /* The paragraph being gathered: its inline markup can span lines. */
  ParaKind    para;
  GString    *para_text;
  glong       para_start;
  glong       marker_end;
  int         marker_tag;
  int         para_depth;  /* the list level it belongs to, or -1 */
} Renderer;

static int
list_tag (int depth)
{
  return TAG_LIST0 + MIN (depth, N_LIST_TAGS - 1);
}

static void
begin_block (Renderer *r)
{
  if (r->started)
    {
      out_append (&r->out, "\n", 1);
      if (r->blank)
        {
          out_span (&r->out, TAG_GAP, r->out.chars, r->out.chars + 1);
          out_append (&r->out, "\n", 1);
        }
    }
  r->started = TRUE;
  r->blank = FALSE;
}

static void
end_block (Renderer *r,
           int       tag,
           glong     start,
           int       depth)
{
  if (tag >= 0)
    out_span (&r->out, tag, start, r->out.chars);
  if (depth >= 0)
    out_span (&r->out, list_tag (depth), start, r->out.chars);
}

static void
flush_para (Renderer *r)
{
  if (r->para == PARA_NONE)
    return;
  inline_render (&r->out, r->para_text->str, r->para_text->len);
  if (r->para == PARA_ITEM)
    out_span (&r->out, r->marker_tag, r->para_start, r->marker_end);
  end_block (r, r->para == PARA_QUOTE ? TAG_QUOTE : -1, r->para_start, r->para_depth);
  r->para = PARA_NONE;
  g_string_truncate (r->para_text, 0);
}

static void
start_para (Renderer   *r,
            ParaKind    kind,
            int         depth,
            const char *s,
            gsize       n)
{
  begin_block (r);
  r->para = kind;
  r->para_depth = depth;
  r->para_start = r->out.chars;
  g_string_append_len (r->para_text, s, n);
}

/* Finds the level for an item whose marker sits at column `indent`: any
 * deeper indentation than the item above nests, so 2, 3 and 4 spaces all
 * work. Returns its depth and the number to show. */
static int
push_item (Renderer     *r,
           int           indent,
           const Marker *m,
           gint64       *number)
{
  Level *lv;

  while (r->n_levels > 0 && r->levels[r->n_levels - 1].marker_indent > indent)
    r->n_levels--;
  if (r->n_levels > 0 &&
      (r->levels[r->n_levels - 1].marker_indent == indent || r->n_levels == MAX_LEVELS))
    {
      lv = &r->levels[r->n_levels - 1];
      /* Another bullet character or numbering style starts another list. */
      if (lv->ordered != m->ordered || lv->delim != m->delim)
        {
          lv->ordered = m->ordered;
          lv->delim = m->delim;
          lv->next_number = m->number;
        }
    }
  else
    {
      lv = &r->levels[r->n_levels++];
      lv->marker_indent = indent;
      lv->ordered = m->ordered;
      lv->delim = m->delim;
      lv->next_number = m->number;
    }
  *number = lv->next_number++;
  return r->n_levels - 1;
}

/* The list item a non-item line at column `indent` belongs to: the
 * deepest one whose marker is less indented. Closes the lists deeper than
 * that, or all of them. */
static int
container_depth (Renderer *r,
                 int       indent)
{
  while (r->n_levels > 0 && r->levels[r->n_levels - 1].marker_indent >= indent)
    r->n_levels--;
  return r->n_levels - 1;
}

static void
render_item (Renderer     *r,
             int           indent,
             const char   *s,
             gsize         n,
             const Marker *m)
{
  static const char *const bullets[] = { "•", "◦", "▪" };
  gint64 number;
  int depth = push_item (r, indent, m, &number);
  const char *text = s + m->len;
  gsize len = n - m->len;
  char marker[32];

  if (m->ordered)
    g_snprintf (marker, sizeof marker, "%" G_GINT64_FORMAT "%c ", number, m->delim);
  else if (len >= 3 && text[0] == '[' && text[2] == ']' && (len == 3 || text[3] == ' ') &&
           (text[1] == ' ' || text[1] == 'x' || text[1] == 'X'))
    {
      /* A task list item. */
      g_snprintf (marker, sizeof marker, "%s ", text[1] == ' ' ? "☐" : "☑");
      text += 3;
      len -= 3;
      while (len > 0 && *text == ' ')
        text++, len--;
    }
  else
    g_snprintf (marker, sizeof marker, "%s ", bullets[depth % G_N_ELEMENTS (bullets)]);

  start_para (r, PARA_ITEM, depth, "", 0);
  out_append_str (&r->out, marker);
  r->marker_end = r->out.chars;
  r->marker_tag = m->ordered ? TAG_NUMBER : TAG_BULLET;
  g_string_append_len (r->para_text, text, len);
}

/* Returns the line after the block. */
static int
render_fence (Renderer *r,
              int       i,
              int       indent,
              char      fch,
              int       flen,
              int       depth)
{
  glong start;
  int j;

  begin_block (r);
  start = r->out.chars;
  for (j = i + 1; j < r->n_lines; j++)
    {
      const Line *l = &r->lines[j];
      gsize skip;
      int col = leading_indent (l->p, l->len, &skip);
      gsize cut = 0;

      if (fence_close (l->p + skip, l->len - skip, fch, flen))
        {
          j++;
          break;
        }
      /* Strip the fence's own indentation from the code, no more. */
      for (int c = 0; cut < skip && c < indent && c < col; cut++)
        c = l->p[cut] == '\t' ? (c / 4 + 1) * 4 : c + 1;
      if (j > i + 1)
        out_append (&r->out, "\n", 1);
      out_append (&r->out, l->p + cut, l->len - cut);
    }
  end_block (r, TAG_CODE_BLOCK, start, depth);
  return j;
}

static int
render_table (Renderer *r,
              int       i,
              int       depth)
{
  GArray *cells = r->cells;
  int columns, n_rows, j;
  Align *align;
  int *width;
  Out *rendered;
  glong start;

  split_cells (r->lines[i].p, r->lines[i].len, cells);
  columns = cells->len;
  align = g_new0 (Align, columns);
  width = g_new0 (int, columns);
  parse_separator (&r->lines[i + 1], columns, cells, align);

  n_rows = 1;
  for (j = i + 2; j < r->n_lines; j++)
    {
      const Line *l = &r->lines[j];
      if (is_blank (l->p, l->len) || memchr (l->p, '|', l->len) == NULL)
        break;
      n_rows++;
    }

  /* Each cell rendered on its own first, to measure it. */
  rendered = g_new (Out, (gsize) n_rows * columns);
  for (int row = 0; row < n_rows; row++)
    {
      const Line *l = &r->lines[row == 0 ? i : i + 1 + row];
      split_cells (l->p, l->len, cells);
      for (int c = 0; c < columns; c++)
        {
          Out *o = &rendered[row * columns + c];
          out_init (o);
          if (c < (int) cells->len)
            {
              const Line *cell = &g_array_index (cells, Line, c);
              inline_render (o, cell->p, cell->len);
            }
          width[c] = MAX (width[c], display_width (o->text->str, o->text->len));
        }
    }

  begin_block (r);
  start = r->out.chars;
  for (int row = 0; row < n_rows; row++)
    {
      if (row > 0)
        out_append (&r->out, "\n", 1);
      for (int c = 0; c < columns; c++)
        {
          Out *o = &rendered[row * columns + c];
          int pad = width[c] - display_width (o->text->str, o->text->len);
          int before = align[c] == ALIGN_RIGHT ? pad : align[c] == ALIGN_CENTER ? pad / 2 : 0;
          glong cell_start;

          if (c == columns - 1 && o->text->len == 0)
            before = 0;
          if (c > 0)
            out_append_str (&r->out, " │ ");
          out_repeat (&r->out, " ", before);
          cell_start = r->out.chars;
          out_append_out (&r->out, o);
          if (row == 0)
            out_span (&r->out, TAG_TABLE_HEADER, cell_start, r->out.chars);
          /* No trailing blanks after the last column: they would only be
           * noise in copied text. */
          if (c < columns - 1)
            out_repeat (&r->out, " ", pad - before);
        }
      if (row == 0)
        {
          /* The rule under the header, even before any row arrives. */
          out_append (&r->out, "\n", 1);
          for (int c = 0; c < columns; c++)
            {
              if (c > 0)
                out_append_str (&r->out, "─┼─");
              out_repeat (&r->out, "─", MAX (width[c], 1));
            }
        }
    }
  end_block (r, TAG_TABLE, start, depth);

  for (int k = 0; k < n_rows * columns; k++)
    out_clear (&rendered[k]);
  g_free (rendered);
  g_free (width);
  g_free (align);
  return i + 1 + n_rows;
}

/* Whether the line starts a block of its own, ending a paragraph. */
static gboolean
starts_block (Renderer   *r,
              int         i,
              const char *s,
              gsize       n)
{
  Marker m;
  char fch;
  gsize text;

  return fence_open (s, n, &fch) > 0 ||
         heading_level (s, n, &text) > 0 ||
         is_rule (s, n) ||
         list_marker (s, n, &m) ||
         (n > 0 && s[0] == '>') ||
         table_start (r->lines, r->n_lines, i, r->cells);
}

static void
render_blocks (Renderer *r)
{
  int i = 0;

  while (i < r->n_lines)
    {
      const Line *l = &r->lines[i];
      gsize skip, n, text;
      const char *s;
      int indent, depth, flen, level;
      char fch;
      Marker m;

      if (is_blank (l->p, l->len))
        {
          flush_para (r);
          r->blank = r->started;
          i++;
          continue;
        }
      indent = leading_indent (l->p, l->len, &skip);
      s = l->p + skip;
      n = rtrim (s, l->len - skip);

      if (!is_rule (s, n) && list_marker (s, n, &m))
        {
          flush_para (r);
          render_item (r, indent, s, n, &m);
          i++;
          continue;
        }

      if (r->para == PARA_QUOTE && s[0] == '>')
        {
          gsize k = 1 + (n > 1 && s[1] == ' ');
          g_string_append_c (r->para_text, '\n');
          g_string_append_len (r->para_text, s + k, n - k);
          i++;
          continue;
        }

      /* A line straight after a paragraph's continues it, single line
       * breaks kept, unless it starts a block. */
      if (r->para != PARA_NONE && !starts_block (r, i, s, n))
        {
          g_string_append_c (r->para_text, '\n');
          g_string_append_len (r->para_text, s, n);
          i++;
          continue;
        }

      flush_para (r);
      depth = container_depth (r, indent);

      if ((flen = fence_open (s, n, &fch)) > 0)
        {
          i = render_fence (r, i, indent, fch, flen, depth);
          continue;
        }
      if ((level = heading_level (s, n, &text)) > 0)
        {
          const char *h = s + text;
          gsize hn = n - text;
          glong start;

          /* An optional closing run of #s. */
          hn = rtrim (h, hn);
          while (hn > 0 && h[hn - 1] == '#')
            hn--;
          if (hn > 0 && h[hn - 1] != ' ' && h[hn - 1] != '\t')
            hn = rtrim (h, n - text);
          while (hn > 0 && (*h == ' ' || *h == '\t'))
            h++, hn--;
          hn = rtrim (h, hn);

          begin_block (r);
          start = r->out.chars;
          inline_render (&r->out, h, hn);
          end_block (r, TAG_H1 + level - 1, start, depth);
          i++;
          continue;
        }
      if (is_rule (s, n))
        {
          glong start;

          begin_block (r);
          start = r->out.chars;
          out_repeat (&r->out, "─", RULE_WIDTH);
          end_block (r, TAG_RULE, start, depth);
          i++;
          continue;
        }
      if (s[0] == '>')
        {
          gsize k = 1 + (n > 1 && s[1] == ' ');
          start_para (r, PARA_QUOTE, depth, s + k, n - k);
          i++;
          continue;
        }
      if (table_start (r->lines, r->n_lines, i, r->cells))
        {
          i = render_table (r, i, depth);
          continue;
        }
      start_para (r, PARA_TEXT, depth, s, n);
      i++;
    }
  flush_para (r);
}

static void
render (Out        *out,
        const char *text)
{
  Renderer r = { 0 };
  GArray *lines = g_array_new (FALSE, FALSE, sizeof (Line));
  char *valid;
  const char *p;

  out_init (&r.out);
  if (text == NULL)
    text = "";
  /* Nothing that is not UTF-8 may reach GTK. */
  valid = g_utf8_make_valid (text, -1);

  p = valid;
  for (;;)
    {
      Line l;
      gsize n = strcspn (p, "\r\n");

      l.p = p;
      l.len = n;
      g_array_append_val (lines, l);
      p += n;
      if (*p == '\0')
        break;
      p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
    }

  r.lines = (const Line *) lines->data;
  r.n_lines = lines->len;
  r.cells = g_array_new (FALSE, FALSE, sizeof (Line));
  r.para_text = g_string_new (NULL);
  render_blocks (&r);

  *out = r.out;
  g_string_free (r.para_text, TRUE);
  g_array_unref (r.cells);
  g_array_unref (lines);
  g_free (valid);
}

/* ==== Public API ======================================================== */

static int
compare_spans (gconstpointer a,
               gconstpointer b)
{
  const Span *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

void
tessera_markdown_render (GtkTextBuffer *buffer,
                         const char    *text)
{
  GtkTextTag *tags[N_TAGS];
  GtkTextIter at;
  Out out;

  g_return_if_fail (GTK_IS_TEXT_BUFFER (buffer));

  lookup_tags (buffer, tags);
  render (&out, text);
  gtk_text_buffer_set_text (buffer, out.text->str, out.text->len);
  /* In order, walking one iterator forward: looking each offset up anew
   * costs the length of its line, which on a long line with many spans
   * added up to quadratic time. */
  g_array_sort (out.spans, compare_spans);
  gtk_text_buffer_get_start_iter (buffer, &at);
  for (guint i = 0; i < out.spans->len; i++)
    {
      const Span *s = &g_array_index (out.spans, Span, i);
      GtkTextIter end;

      gtk_text_iter_forward_chars (&at, s->start - gtk_text_iter_get_offset (&at));
      end = at;
      gtk_text_iter_forward_chars (&end, s->end - s->start);
      gtk_text_buffer_apply_tag (buffer, tags[s->tag], &at, &end);
    }
  out_clear (&out);
}

char *
tessera_markdown_to_plain (const char *text)
{
  Out out;

  render (&out, text);
  g_array_unref (out.spans);
  return g_string_free (out.text, FALSE);
}
