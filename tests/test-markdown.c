/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-markdown.c — ui/tessera-markdown.c: what text each construct puts in
 * the buffer and which tags cover it; answers rendered prefix by prefix as
 * they stream in; CJK tables; invalid UTF-8; random markup.
 */
#include "config.h"

#include <string.h>

#include <gtk/gtk.h>

#include "tessera-markdown.h"

static GtkTextBuffer *buffer;

/* Renders `md` and returns the buffer's text. */
static char *
render (const char *md)
{
  GtkTextIter a, b;

  tessera_markdown_render (buffer, md);
  gtk_text_buffer_get_bounds (buffer, &a, &b);
  return gtk_text_buffer_get_text (buffer, &a, &b, TRUE);
}

static void
assert_renders (const char *md,
                const char *expected)
{
  g_autofree char *text = render (md);
  g_autofree char *plain = tessera_markdown_to_plain (md);

  g_assert_cmpstr (text, ==, expected);
  g_assert_cmpstr (plain, ==, expected);
}

static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(char **) a, *(char **) b);
}

/* The names of the tags on the character at `offset`, sorted, joined by
 * spaces; "" when there are none. */
static char *
tags_at (int offset)
{
  GtkTextIter it;
  GSList *tags;
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  char *joined;

  gtk_text_buffer_get_iter_at_offset (buffer, &it, offset);
  tags = gtk_text_iter_get_tags (&it);
  for (GSList *l = tags; l != NULL; l = l->next)
    {
      char *name;
      g_object_get (l->data, "name", &name, NULL);
      g_ptr_array_add (names, name);
    }
  g_slist_free (tags);
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  joined = g_strjoinv (" ", (char **) names->pdata);
  g_ptr_array_unref (names);
  return joined;
}

/* The character offset of the first `needle` in the buffer. */
static int
offset_of (const char *needle)
{
  GtkTextIter a, b;
  g_autofree char *text = NULL;
  const char *hit;

  gtk_text_buffer_get_bounds (buffer, &a, &b);
  text = gtk_text_buffer_get_text (buffer, &a, &b, TRUE);
  hit = strstr (text, needle);
  if (hit == NULL)
    g_error ("“%s” is not in “%s”", needle, text);
  return g_utf8_pointer_to_offset (text, hit);
}

static void
assert_tags (const char *needle,
             const char *expected)
{
  g_autofree char *tags = tags_at (offset_of (needle));
  if (g_strcmp0 (tags, expected) != 0)
    g_error ("tags on “%s”: “%s”, expected “%s”", needle, tags, expected);
}

/* Every character of `needle` has `tag`, and the ones on either side
 * do not. */
static void
assert_covers (const char *needle,
               const char *tag)
{
  GtkTextTag *t = gtk_text_tag_table_lookup (gtk_text_buffer_get_tag_table (buffer), tag);
  int start = offset_of (needle);
  int end = start + g_utf8_strlen (needle, -1);
  GtkTextIter it;

  g_assert_nonnull (t);
  for (int i = start; i < end; i++)
    {
      gtk_text_buffer_get_iter_at_offset (buffer, &it, i);
      if (!gtk_text_iter_has_tag (&it, t))
        g_error ("%s is missing at %d in “%s”", tag, i, needle);
    }
  if (start > 0)
    {
      gtk_text_buffer_get_iter_at_offset (buffer, &it, start - 1);
      if (gtk_text_iter_has_tag (&it, t) && gtk_text_iter_get_char (&it) != '\n')
        g_error ("%s starts before “%s”", tag, needle);
    }
  gtk_text_buffer_get_iter_at_offset (buffer, &it, end);
  if (!gtk_text_iter_is_end (&it) && gtk_text_iter_get_char (&it) != '\n' &&
      gtk_text_iter_has_tag (&it, t))
    g_error ("%s goes on after “%s”", tag, needle);
}

/* Whether no character in the buffer has `tag`. */
static gboolean
tag_unused (const char *tag)
{
  GtkTextTag *t = gtk_text_tag_table_lookup (gtk_text_buffer_get_tag_table (buffer), tag);
  GtkTextIter it;

  gtk_text_buffer_get_start_iter (buffer, &it);
  return !gtk_text_iter_has_tag (&it, t) && !gtk_text_iter_forward_to_tag_toggle (&it, t);
}

static int
columns (const char *s,
         gsize       len)
{
  int w = 0;
  for (const char *p = s; p < s + len; p = g_utf8_next_char (p))
    w += g_unichar_iswide (g_utf8_get_char (p)) ? 2 : 1;
  return w;
}

/* ==== Blocks ============================================================ */

static void
test_paragraphs (void)
{
  g_autofree char *gap = NULL;

  assert_renders ("", "");
  assert_renders (NULL, "");
  assert_renders ("\n\n  \n", "");
  /* Single newlines stay line breaks; blank lines become one gap line. */
  assert_renders ("one\ntwo\n\n\nthree", "one\ntwo\n\nthree");
  gap = tags_at (8);
  g_assert_cmpstr (gap, ==, "md-gap");
  assert_tags ("one", "");
  assert_tags ("three", "");
  assert_renders ("  lead and trail  \n", "lead and trail");
  assert_renders ("a\r\nb\r\n\r\n- c\rd", "a\nb\n\n• c\nd");
}

static void
test_headings (void)
{
  static const char *const names[] = { "md-h1", "md-h2", "md-h3", "md-h4", "md-h5", "md-h6" };

  assert_renders ("# Title\nBody", "Title\nBody");
  assert_covers ("Title", "md-h1");
  assert_tags ("Body", "");
  for (int level = 1; level <= 6; level++)
    {
      g_autofree char *md = g_strdup_printf ("%.*s Heading", level, "######");
      assert_renders (md, "Heading");
      assert_covers ("Heading", names[level - 1]);
    }
  assert_renders ("####### seven", "####### seven");
  assert_renders ("#hashtag", "#hashtag");
  g_assert_true (tag_unused ("md-h1"));
  assert_renders ("## Closed ##", "Closed");
  assert_renders ("# C#", "C#");
  assert_renders ("#", "");
  assert_renders ("## **Bold** head\n\ntext", "Bold head\n\ntext");
  assert_tags ("Bold", "md-bold md-h2");
  assert_tags ("head", "md-h2");
  assert_renders ("\\# not a heading", "# not a heading");
  g_assert_true (tag_unused ("md-h1"));
}

static void
test_lists (void)
{
  assert_renders ("- a\n- b\n  - c\n    - d\n- e", "• a\n• b\n◦ c\n▪ d\n• e");
  assert_tags ("• a", "md-bullet md-list-0");
  assert_tags ("a", "md-list-0");
  assert_tags ("◦", "md-bullet md-list-1");
  assert_tags ("d", "md-list-2");
  assert_tags ("e", "md-list-0");
  assert_renders ("* x\n+ y\n- z", "• x\n• y\n• z");

  /* Numbers count on from the first, as CommonMark does, blank lines
   * between items or not. */
  assert_renders ("1. one\n1. two\n1. three", "1. one\n2. two\n3. three");
  assert_tags ("1.", "md-list-0 md-number");
  assert_renders ("3) a\n4) b", "3) a\n4) b");
  assert_renders ("1. a\n\n1. b", "1. a\n\n2. b");
  assert_renders ("- a\n  1. x\n  1. y\n- b", "• a\n1. x\n2. y\n• b");
  assert_tags ("x", "md-list-1");
  assert_tags ("b", "md-list-0");
  /* A new list after something else starts from its own number. */
  assert_renders ("1. a\n\ntext\n\n1. b", "1. a\n\ntext\n\n1. b");
  assert_tags ("text", "");

  /* Lines straight after an item continue it; after a blank line,
   * indented text is a paragraph in the item and unindented text is not. */
  assert_renders ("- a\nmore\n- b", "• a\nmore\n• b");
  assert_tags ("more", "md-list-0");
  assert_renders ("- a\n\n  para\n\nafter", "• a\n\npara\n\nafter");
  assert_tags ("para", "md-list-0");
  assert_tags ("after", "");

  assert_renders ("- [ ] todo\n- [x] done", "☐ todo\n☑ done");
  assert_renders ("- **Name**: value", "• Name: value");
  assert_tags ("Name", "md-bold md-list-0");
  assert_renders ("3.5 GHz\n-5 degrees\n1.x", "3.5 GHz\n-5 degrees\n1.x");
  g_assert_true (tag_unused ("md-list-0"));
  assert_renders ("-", "• ");
  assert_renders ("Intro:\n- a\n- b", "Intro:\n• a\n• b");
  assert_tags ("Intro", "");
}

static void
test_code_blocks (void)
{
  assert_renders ("Intro:\n```c\nint *a = *b;\n  indented\n\n```\nafter",
                  "Intro:\nint *a = *b;\n  indented\n\nafter");
  assert_tags ("int", "md-code-block");
  assert_tags ("indented", "md-code-block");
  assert_tags ("after", "");
  g_assert_true (tag_unused ("md-italic"));
  assert_renders ("~~~\nx\n~~~", "x");
  assert_renders ("````\n```\n````", "```");
  /* Unclosed while streaming: code to the end. */
  assert_renders ("```python\ndef f():\n    **x**", "def f():\n    **x**");
  assert_covers ("def f():\n    **x**", "md-code-block");
  assert_renders ("```", "");
  assert_renders ("```js```", "js");
  assert_tags ("js", "md-code");
  /* In a list item: the item's margin, the fence's indentation removed. */
  assert_renders ("1. item\n\n   ```\n   code\n     more\n   ```\n2. next",
                  "1. item\n\ncode\n  more\n2. next");
  assert_tags ("code", "md-code-block md-list-0");
  assert_renders ("- a\n```\nb\n```", "• a\nb");
  assert_tags ("b", "md-code-block");
}

static void
test_tables (void)
{
  assert_renders ("| a | bb |\n|---|:-:|\n| 1 | 2 |\n| long | x |",
                  "a    │ bb\n"
                  "─────┼───\n"
                  "1    │ 2\n"
                  "long │ x");
  assert_tags ("a", "md-table md-table-header");
  assert_tags ("bb", "md-table md-table-header");
  assert_tags ("long", "md-table");
  assert_tags ("─", "md-table");

  assert_renders ("| n | m |\n|--:|:-:|\n| 100 | 12345 |",
                  "  n │   m\n"
                  "────┼──────\n"
                  "100 │ 12345");
  assert_renders ("| **b** | `c` |\n|---|---|\n| x | y |", "b │ c\n──┼──\nx │ y");
  assert_tags ("b", "md-bold md-table md-table-header");
  assert_tags ("c", "md-code md-table md-table-header");
  assert_renders ("| a \\| b | c |\n|---|---|", "a | b │ c\n──────┼──");
  assert_renders ("a | b\n--- | ---\nc | d", "a │ b\n──┼──\nc │ d");
  /* Missing cells are empty; extra ones are dropped. */
  assert_renders ("| a | b |\n|---|---|\n| only |\n| 1 | 2 | 3 |",
                  "a    │ b\n─────┼──\nonly │ \n1    │ 2");
  /* Ends at a blank line or a line without a pipe. */
  assert_renders ("| a |\n|---|\n| b |\nnext", "a\n─\nb\nnext");
  assert_tags ("next", "");

  /* Until its delimiter row is complete, a table is plain text. */
  assert_renders ("| a | b |\n| 1 | 2 |", "| a | b |\n| 1 | 2 |");
  assert_renders ("| a | b |\n|---|", "| a | b |\n|---|");
  assert_renders ("| a | b |\n|---|:", "| a | b |\n|---|:");
  g_assert_true (tag_unused ("md-table"));
  assert_renders ("Before:\n| a |\n|---|", "Before:\na\n─");
  assert_tags ("Before", "");
}

static void
test_cjk_table (void)
{
  g_autofree char *text = render ("| 名前 | 値 |\n|---|---|\n| ab | 1 |\n| 東京都 | 2 |");
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);

  g_assert_cmpstr (text, ==,
                   "名前   │ 値\n"
                   "───────┼───\n"
                   "ab     │ 1\n"
                   "東京都 │ 2");
  /* The separators line up in a monospace grid. */
  for (int i = 0; lines[i] != NULL; i++)
    {
      const char *bar = strstr (lines[i], i == 1 ? "┼" : "│");
      g_assert_nonnull (bar);
      g_assert_cmpint (columns (lines[i], bar - lines[i]), ==, 7);
    }
}

static void
test_rules_and_quotes (void)
{
  const char *rule = "────────────────────────";

  g_assert_cmpint (g_utf8_strlen (rule, -1), ==, 24);
  {
    g_autofree char *expected = g_strdup_printf ("a\n\n%s\n\nb", rule);
    assert_renders ("a\n\n---\n\nb", expected);
    assert_covers (rule, "md-rule");
    assert_tags ("a", "");
  }
  {
    g_autofree char *expected = g_strdup_printf ("%s\n%s\n%s\ntext\n%s", rule, rule, rule, rule);
    /* No setext headings: a --- under text is a rule. */
    assert_renders ("***\n___\n- - -\ntext\n---", expected);
  }
  assert_renders ("> quoted *it*\n> more\nlazy\n\nafter", "quoted it\nmore\nlazy\n\nafter");
  assert_tags ("quoted", "md-quote");
  assert_tags ("it", "md-italic md-quote");
  assert_tags ("lazy", "md-quote");
  assert_tags ("after", "");
}

/* ==== Inline markup ===================================================== */

static void
test_emphasis (void)
{
  assert_renders ("**b1** __b2__ *i1* _i2_ ***bi*** ___bi2___", "b1 b2 i1 i2 bi bi2");
  assert_covers ("b1", "md-bold");
  assert_tags ("b1", "md-bold");
  assert_tags ("b2", "md-bold");
  assert_tags ("i1", "md-italic");
  assert_tags ("i2", "md-italic");
  assert_tags ("bi", "md-bold md-italic");
  assert_tags ("bi2", "md-bold md-italic");
  assert_tags (" ", "");

  assert_renders ("snake_case_name and a_b_c", "snake_case_name and a_b_c");
  g_assert_true (tag_unused ("md-italic"));
  assert_renders ("x*y*z", "xyz");
  assert_tags ("y", "md-italic");

  /* Unclosed emphasis stays literal: a streaming "**bold" shows its stars
   * until the closing ones arrive. */
  assert_renders ("**unclosed bold", "**unclosed bold");
  assert_renders ("an *open one", "an *open one");
  assert_renders ("2 * 3 * 4", "2 * 3 * 4");
  g_assert_true (tag_unused ("md-bold"));
  g_assert_true (tag_unused ("md-italic"));

  assert_renders ("*italic with **bold** inside*", "italic with bold inside");
  assert_covers ("italic with bold inside", "md-italic");
  assert_covers ("bold", "md-bold");
  assert_tags ("with", "md-italic");
  assert_renders ("**a\nb**", "a\nb");
  assert_tags ("b", "md-bold");
  assert_renders ("***a** b*", "a b");
  assert_tags ("a", "md-bold md-italic");
  assert_tags (" b", "md-italic");
  assert_renders ("**a*", "*a");
  assert_tags ("a", "md-italic");
}

static void
test_inline_code_and_escapes (void)
{
  assert_renders ("use `a*b*c` now", "use a*b*c now");
  assert_covers ("a*b*c", "md-code");
  g_assert_true (tag_unused ("md-italic"));
  assert_renders ("``a`b``", "a`b");
  assert_renders ("`` `x` ``", "`x`");
  assert_renders ("`a\nb`", "a b");
  assert_renders ("`unclosed *x*", "`unclosed x");
  assert_tags ("x", "md-italic");
  assert_renders ("*a `*` b*", "a * b");
  assert_tags ("*", "md-code md-italic");
  assert_renders ("\\*not\\* \\_x\\_ \\`y\\` \\\\ \\q", "*not* _x_ `y` \\ \\q");
  g_assert_true (tag_unused ("md-italic"));
  g_assert_true (tag_unused ("md-code"));
  assert_renders ("see [the docs](https://x.org/a_b) now", "see the docs now");
  assert_covers ("the docs", "md-link");
  assert_renders ("[**b**](u)", "b");
  assert_tags ("b", "md-bold md-link");
  assert_renders ("[unclosed](http://x", "[unclosed](http://x");
  assert_renders ("[a] b ]", "[a] b ]");
  g_assert_true (tag_unused ("md-link"));
}

/* ==== Robustness ======================================================== */

static void
test_invalid_utf8 (void)
{
  static const char *const inputs[] = {
    "a\xff**b**\xc3",
    "\xe5\x90",
    "| \xe5\x90 | b |\n|---|---|\n| \xff | x |",
    "```\n\xc0\xaf\n",
    "- \xed\xa0\x80 surrogate",
    "\xf4\x90\x80\x80 too large *x*",
  };

  for (guint i = 0; i < G_N_ELEMENTS (inputs); i++)
    {
      g_autofree char *text = render (inputs[i]);
      g_assert_true (g_utf8_validate (text, -1, NULL));
    }
  {
    g_autofree char *text = render ("a\xff**b**");
    g_assert_cmpstr (text, ==, "a\xef\xbf\xbd" "b");
    assert_tags ("b", "md-bold");
  }
}

static const char *const answers[] = {
  "## Summary\n"
  "\n"
  "The chart shows **three** regions; the `north` one grows *fastest*.\n"
  "Values are in millions.\n"
  "\n"
  "| Region | 2022 | 2023 |\n"
  "|:-------|-----:|:----:|\n"
  "| North  | 12.5 | 18.0 |\n"
  "| South  |  9.1 | 9.4 |\n"
  "| 東部 | 7 | 8 |\n"
  "\n"
  "### Details\n"
  "1. North: up ~44%\n"
  "2. South: flat\n"
  "   - driven by __exports__\n"
  "   - see [the report](https://example.org/r_1)\n"
  "3. East: small\n"
  "\n"
  "---\n"
  "\n"
  "> Note: estimates only.\n",

  "Here is the code:\n"
  "\n"
  "```python\n"
  "def area(w, h):\n"
  "    return w * h  # **not bold**\n"
  "```\n"
  "\n"
  "- Call `area(2, 3)` to get *6*.\n"
  "- Use snake_case names\n"
  "\n"
  "    1. nested deeply\n"
  "\n"
  "Done.\n",

  "图中显示了**三个**区域：\n"
  "\n"
  "| 名称 | 数值 |\n"
  "| --- | --- |\n"
  "| 北京 | 一百 |\n"
  "| ab | 2 |\n"
  "\n"
  "* 第一点：*斜体*\n"
  "* 第二点：`代码`\n",
};

/* Each prefix of an answer, byte by byte (so also mid-character), renders
 * to valid text that never shrinks by more than a closing construct's
 * markup, and the last one is the whole answer. */
static void
test_streaming (void)
{
  for (guint a = 0; a < G_N_ELEMENTS (answers); a++)
    {
      const char *answer = answers[a];
      gsize len = strlen (answer);
      glong previous = 0;

      for (gsize k = 0; k <= len; k++)
        {
          g_autofree char *prefix = g_strndup (answer, k);
          g_autofree char *text = render (prefix);
          g_autofree char *plain = tessera_markdown_to_plain (prefix);
          glong chars = g_utf8_strlen (text, -1);

          g_assert_true (g_utf8_validate (text, -1, NULL));
          g_assert_cmpstr (text, ==, plain);
          if (chars < previous - 40)
            g_error ("answer %u shrank from %ld to %ld characters at byte %zu:\n%s",
                     a, previous, chars, k, text);
          previous = chars;
        }
    }

  /* Spot checks on the first answer as it arrives. */
  {
    g_autofree char *text = render ("The chart shows **thr");
    g_assert_cmpstr (text, ==, "The chart shows **thr");
  }
  {
    g_autofree char *text = render ("| Region | 2022 | 2023 |\n|:-------|--");
    g_assert_cmpstr (text, ==, "| Region | 2022 | 2023 |\n|:-------|--");
  }
  {
    g_autofree char *text = render ("| Region | 2022 | 2023 |\n|:-------|-----:|:----:|\n| North  | 12");
    g_assert_cmpstr (text, ==,
                     "Region │ 2022 │ 2023\n"
                     "───────┼──────┼─────\n"
                     "North  │   12 │ ");
  }
  {
    g_autofree char *text = render (answers[0]);
    g_assert_true (g_str_has_prefix (text, "Summary\n\nThe chart shows three regions;"));
    assert_tags ("Summary", "md-h2");
    assert_tags ("three", "md-bold");
    assert_tags ("fastest", "md-italic");
    assert_tags ("North ", "md-table");
    assert_tags ("exports", "md-bold md-list-1");
    assert_tags ("the report", "md-link md-list-1");
    assert_tags ("Note", "md-quote");
    g_assert_nonnull (strstr (text, "1. North: up ~44%\n2. South: flat\n◦ driven by exports\n"));
  }
  {
    g_autofree char *text = render (answers[1]);
    assert_tags ("def area", "md-code-block");
    g_assert_nonnull (strstr (text, "# **not bold**"));
    g_assert_nonnull (strstr (text, "• Use snake_case names"));
    assert_tags ("nested", "md-list-1");
    assert_tags ("Done", "");
  }
}

/* Random strings of Markdown's own characters, and pathological runs that
 * would be quadratic in a naive renderer. */
static void
test_fuzz (void)
{
  static const char *const pieces[] = {
    "*", "**", "***", "_", "__", "`", "``", "```", "~~~", "#", "# ", "###### ",
    "-", "- ", "+ ", "* ", "1. ", "2) ", "|", "| ", "|---", ":-:", "---", ">",
    "> ", "\\", "[", "]", "](", "(", ")", " ", "  ", "    ", "\t", "\n", "\n\n",
    "\r", "a", "b", "word", "é", "名", "\xe5\x90", "\xff", "[ ] ", "[x]",
  };
  GRand *rand = g_rand_new_with_seed (20240611);
  GString *s = g_string_new (NULL);

  for (int iter = 0; iter < 4000; iter++)
    {
      int n = g_rand_int_range (rand, 0, 120);
      g_autofree char *text = NULL;
      g_autofree char *plain = NULL;

      g_string_truncate (s, 0);
      for (int k = 0; k < n; k++)
        g_string_append (s, pieces[g_rand_int_range (rand, 0, G_N_ELEMENTS (pieces))]);
      text = render (s->str);
      plain = tessera_markdown_to_plain (s->str);
      g_assert_true (g_utf8_validate (text, -1, NULL));
      g_assert_cmpstr (text, ==, plain);
    }
  g_string_free (s, TRUE);
  g_rand_free (rand);
}

static void
test_pathological (void)
{
  static const char *const units[] = {
    "*a", "_", "**", "`", "` ``", "[", "](", "](x", "| a ", "- ", "  - ", "\\",
    "*a _b ", "a*", "|---", "\n|---|\n", "\n- x", "\n```\n",
  };

  for (guint u = 0; u < G_N_ELEMENTS (units); u++)
    {
      GString *s = g_string_new (NULL);
      g_autofree char *shown = g_strescape (units[u], NULL);
      GTimer *timer = g_timer_new ();
      double elapsed;

      while (s->len < 8192)
        g_string_append (s, units[u]);
      tessera_markdown_render (buffer, s->str);
      elapsed = g_timer_elapsed (timer, NULL);
      g_test_message ("8 KB of “%s”: %.1f ms", shown, elapsed * 1000);
      g_assert_cmpfloat (elapsed, <, 0.5);
      g_timer_destroy (timer);
      g_string_free (s, TRUE);
    }

  /* A model stuck in a loop: past a few hundred spans in a paragraph,
   * the text stays but the formatting stops. */
  {
    GString *s = g_string_new (NULL);
    g_autofree char *text = NULL;
    GtkTextIter end;

    for (int i = 0; i < 1000; i++)
      g_string_append (s, "**ab** ");
    text = render (s->str);
    g_assert_cmpint (strlen (text), ==, 1000 * 3 - 1);
    assert_tags ("ab", "md-bold");
    gtk_text_buffer_get_end_iter (buffer, &end);
    gtk_text_iter_backward_char (&end);
    g_assert_null (gtk_text_iter_get_tags (&end));
    g_string_free (s, TRUE);
  }

  /* A realistic 8 KB answer, rendered as often as streaming would. */
  {
    GString *s = g_string_new (NULL);
    GTimer *timer;
    double per;

    while (s->len < 8192)
      for (guint a = 0; a < G_N_ELEMENTS (answers); a++)
        g_string_append_printf (s, "%s\n", answers[a]);
    timer = g_timer_new ();
    for (int i = 0; i < 20; i++)
      tessera_markdown_render (buffer, s->str);
    per = g_timer_elapsed (timer, NULL) / 20;
    g_test_message ("an 8 KB answer: %.2f ms a render", per * 1000);
    g_assert_cmpfloat (per, <, 0.25);
    g_timer_destroy (timer);
    g_string_free (s, TRUE);
  }
}

/* The tags are made once per tag table, and a shared table is fine. */
static void
test_tags (void)
{
  GtkTextTagTable *table = gtk_text_tag_table_new ();
  GtkTextBuffer *a = gtk_text_buffer_new (table);
  GtkTextBuffer *b = gtk_text_buffer_new (table);
  int before;

  tessera_markdown_ensure_tags (a);
  before = gtk_text_tag_table_get_size (table);
  g_assert_cmpint (before, >, 10);
  tessera_markdown_render (a, "**x**");
  tessera_markdown_render (b, "`y`");
  tessera_markdown_ensure_tags (b);
  g_assert_cmpint (gtk_text_tag_table_get_size (table), ==, before);
  g_assert_nonnull (gtk_text_tag_table_lookup (table, "md-code-block"));
  g_object_unref (a);
  g_object_unref (b);
  g_object_unref (table);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  gtk_init ();
  buffer = gtk_text_buffer_new (NULL);

  g_test_add_func ("/markdown/paragraphs", test_paragraphs);
  g_test_add_func ("/markdown/headings", test_headings);
  g_test_add_func ("/markdown/lists", test_lists);
  g_test_add_func ("/markdown/code-blocks", test_code_blocks);
  g_test_add_func ("/markdown/tables", test_tables);
  g_test_add_func ("/markdown/cjk-table", test_cjk_table);
  g_test_add_func ("/markdown/rules-and-quotes", test_rules_and_quotes);
  g_test_add_func ("/markdown/emphasis", test_emphasis);
  g_test_add_func ("/markdown/inline-code-and-escapes", test_inline_code_and_escapes);
  g_test_add_func ("/markdown/invalid-utf8", test_invalid_utf8);
  g_test_add_func ("/markdown/streaming", test_streaming);
  g_test_add_func ("/markdown/fuzz", test_fuzz);
  g_test_add_func ("/markdown/pathological", test_pathological);
  g_test_add_func ("/markdown/tags", test_tags);

  return g_test_run ();
}
