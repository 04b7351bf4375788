/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history-sidebar.h — the list of past conversations beside the
 * image: search, open, rename, delete and export.
 *
 * The sidebar shows and edits; the window decides what happens next. It
 * asks the window to open a conversation ("conversation-activated"), tells
 * it one was deleted so it can offer Undo ("conversation-deleted"), and
 * hands it every message for the person ("notify-user"), which the window
 * shows as a toast.
 */
#pragma once

#include <adwaita.h>

#include "tessera-history.h"

G_BEGIN_DECLS

typedef enum {
  TESSERA_HISTORY_SIDEBAR_EXPORT_MARKDOWN,
  TESSERA_HISTORY_SIDEBAR_EXPORT_JSON,
} TesseraHistorySidebarExportFormat;

#define TESSERA_TYPE_HISTORY_SIDEBAR (tessera_history_sidebar_get_type ())
G_DECLARE_FINAL_TYPE (TesseraHistorySidebar, tessera_history_sidebar,
                      TESSERA, HISTORY_SIDEBAR, GtkWidget)

/* Signals:
 *   conversation-activated (gint64 id)
 *     The person picked a conversation: a click, Enter, or the arrow keys.
 *     Never emitted for tessera_history_sidebar_select() or for rows that
 *     move because the list changed.
 *   conversation-deleted (gint64 id, const char *title)
 *     The conversation is marked deleted in the store; the window may offer
 *     to undo with tessera_history_undelete_conversation(). title is the
 *     one the row showed.
 *   notify-user (const char *message)
 *     A translated sentence for the person: an export that finished or
 *     failed, or an error of the store.
 *
 * Properties:
 *   history      TesseraHistory*, may be NULL: "history unavailable".
 *   search-mode  whether the search bar is open (bind a toggle button).
 */

GtkWidget      *tessera_history_sidebar_new          (TesseraHistory        *history);

TesseraHistory *tessera_history_sidebar_get_history  (TesseraHistorySidebar *self);
void            tessera_history_sidebar_set_history  (TesseraHistorySidebar *self,
                                                      TesseraHistory        *history);

/* The text shown under "History Unavailable" while there is no history,
 * usually the message of the error that kept it from opening. */
void            tessera_history_sidebar_set_error    (TesseraHistorySidebar *self,
                                                      const char            *message);

/* Opens the search bar and puts the focus in its entry (Ctrl+F). */
void            tessera_history_sidebar_start_search (TesseraHistorySidebar *self);

/* Selects the row of conversation id (0: none) without emitting
 * "conversation-activated": the window calls this when it opens a
 * conversation by other means. */
void            tessera_history_sidebar_select       (TesseraHistorySidebar *self,
                                                      gint64                 id);
/* The conversation the sidebar has selected, or 0. */
gint64          tessera_history_sidebar_get_selected (TesseraHistorySidebar *self);

/* Writes conversation id to file on a worker thread, which opens its own
 * TesseraHistory on the same database; the result comes as "notify-user":
 * "Exported to NAME" or the error. The Export menu items call this after
 * the file chooser. */
void            tessera_history_sidebar_export       (TesseraHistorySidebar *self,
                                                      gint64                 id,
                                                      GFile                 *file,
                                                      TesseraHistorySidebarExportFormat format);

G_END_DECLS
