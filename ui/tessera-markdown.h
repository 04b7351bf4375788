/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-markdown.h — the model's answers, Markdown, rendered into a
 * GtkTextBuffer with tags: the chat pane's read-only message views.
 */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

/* Creates the "md-…" tags in the buffer's tag table unless they are there
 * already; tessera_markdown_render() calls it, so this is only needed to
 * restyle the tags before the first render. */
void  tessera_markdown_ensure_tags (GtkTextBuffer *buffer);

/* Replaces the buffer's contents with `text` rendered. Any input is
 * accepted (invalid UTF-8 is repaired, NULL clears the buffer), and a
 * prefix of an answer renders sensibly, so a streaming answer can be
 * re-rendered as it grows. */
void  tessera_markdown_render      (GtkTextBuffer *buffer,
                                    const char    *text);

/* The text tessera_markdown_render() would put in the buffer, without
 * the tags: bullets as "• ", tables as aligned columns. Free with g_free(). */
char *tessera_markdown_to_plain    (const char    *text);

G_END_DECLS
