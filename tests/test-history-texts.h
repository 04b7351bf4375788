/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-history-texts.h — the texts the crash test's writer commits, so
 * that the checking side can tell exactly what each message must hold.
 * Several scripts, so that the search index is exercised too.
 */
#pragma once

#include <glib.h>

static inline char *
question_text (int i)
{
  return g_strdup_printf ("질문 %d: what does the café chart show? 東京 %d", i, i);
}

static inline char *
answer_part_text (int i, int k)
{
  return g_strdup_printf ("answer %d part %d: the chart shows 매출 growth", i, k);
}

static inline char *
answer_text (int i)
{
  return g_strdup_printf ("answer %d final: the chart shows 매출 growth of %d%%.", i, i);
}
