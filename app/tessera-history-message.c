/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "tessera-history"

#include "config.h"

#include "tessera-history-private.h"

G_DEFINE_ENUM_TYPE (TesseraHistoryRole, tessera_history_role,
  G_DEFINE_ENUM_VALUE (TESSERA_HISTORY_ROLE_USER, "user"),
  G_DEFINE_ENUM_VALUE (TESSERA_HISTORY_ROLE_ASSISTANT, "assistant"))

struct _TesseraHistoryMessage
{
  GObject            parent_instance;

  gint64             id;
  gint64             conversation_id;
  TesseraHistoryRole role;
  char              *text;
  gint64             created;
  int                hd_num;
  int                n_tokens;
  double             prefill_speed;
  double             decode_speed;
  gboolean           stopped;
  gboolean           finished;
};

G_DEFINE_FINAL_TYPE (TesseraHistoryMessage, tessera_history_message, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_ID,
  PROP_CONVERSATION_ID,
  PROP_ROLE,
  PROP_TEXT,
  PROP_CREATED,
  PROP_HD_NUM,
  PROP_N_TOKENS,
  PROP_PREFILL_SPEED,
  PROP_DECODE_SPEED,
  PROP_STOPPED,
  PROP_FINISHED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
tessera_history_message_finalize (GObject *object)
{
  TesseraHistoryMessage *self = (TesseraHistoryMessage *) object;

  g_free (self->text);

  G_OBJECT_CLASS (tessera_history_message_parent_class)->finalize (object);
}

static void
tessera_history_message_get_property (GObject    *object,
                                      guint       prop_id,
                                      GValue     *value,
                                      GParamSpec *pspec)
{
  TesseraHistoryMessage *self = TESSERA_HISTORY_MESSAGE (object);

  switch (prop_id)
    {
    case PROP_ID:              g_value_set_int64 (value, self->id); break;
    case PROP_CONVERSATION_ID: g_value_set_int64 (value, self->conversation_id); break;
    case PROP_ROLE:            g_value_set_enum (value, self->role); break;
    case PROP_TEXT:            g_value_set_string (value, self->text); break;
    case PROP_CREATED:         g_value_set_int64 (value, self->created); break;
    case PROP_HD_NUM:          g_value_set_int (value, self->hd_num); break;
    case PROP_N_TOKENS:        g_value_set_int (value, self->n_tokens); break;
    case PROP_PREFILL_SPEED:   g_value_set_double (value, self->prefill_speed); break;
    case PROP_DECODE_SPEED:    g_value_set_double (value, self->decode_speed); break;
    case PROP_STOPPED:         g_value_set_boolean (value, self->stopped); break;
    case PROP_FINISHED:        g_value_set_boolean (value, self->finished); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_history_message_class_init (TesseraHistoryMessageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags flags = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  object_class->finalize = tessera_history_message_finalize;
  object_class->get_property = tessera_history_message_get_property;

  properties[PROP_ID] = g_param_spec_int64 ("id", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_CONVERSATION_ID] =
    g_param_spec_int64 ("conversation-id", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_ROLE] = g_param_spec_enum ("role", NULL, NULL, TESSERA_TYPE_HISTORY_ROLE,
                                             TESSERA_HISTORY_ROLE_USER, flags);
  properties[PROP_TEXT] = g_param_spec_string ("text", NULL, NULL, "", flags);
  properties[PROP_CREATED] = g_param_spec_int64 ("created", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_HD_NUM] = g_param_spec_int ("hd-num", NULL, NULL, 0, G_MAXINT, 0, flags);
  properties[PROP_N_TOKENS] = g_param_spec_int ("n-tokens", NULL, NULL, 0, G_MAXINT, 0, flags);
  properties[PROP_PREFILL_SPEED] =
    g_param_spec_double ("prefill-speed", NULL, NULL, 0, G_MAXDOUBLE, 0, flags);
  properties[PROP_DECODE_SPEED] =
    g_param_spec_double ("decode-speed", NULL, NULL, 0, G_MAXDOUBLE, 0, flags);
  properties[PROP_STOPPED] = g_param_spec_boolean ("stopped", NULL, NULL, FALSE, flags);
  properties[PROP_FINISHED] = g_param_spec_boolean ("finished", NULL, NULL, TRUE, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
tessera_history_message_init (TesseraHistoryMessage *self)
{
  self->finished = TRUE;
}

TesseraHistoryMessage *
_tessera_history_message_new_from_row (sqlite3_stmt *row)
{
  TesseraHistoryMessage *self = g_object_new (TESSERA_TYPE_HISTORY_MESSAGE, NULL);
  const char *role = (const char *) sqlite3_column_text (row, MSG_COL_ROLE);
  const char *text = (const char *) sqlite3_column_text (row, MSG_COL_TEXT);

  self->id = sqlite3_column_int64 (row, MSG_COL_ID);
  self->conversation_id = sqlite3_column_int64 (row, MSG_COL_CONVERSATION_ID);
  self->role = g_strcmp0 (role, "assistant") == 0 ? TESSERA_HISTORY_ROLE_ASSISTANT
                                                  : TESSERA_HISTORY_ROLE_USER;
  self->text = g_strdup (text != NULL ? text : "");
  self->created = sqlite3_column_int64 (row, MSG_COL_CREATED);
  self->hd_num = sqlite3_column_int (row, MSG_COL_HD_NUM);
  self->n_tokens = sqlite3_column_int (row, MSG_COL_N_TOKENS);
  self->prefill_speed = sqlite3_column_double (row, MSG_COL_PREFILL_SPEED);
  self->decode_speed = sqlite3_column_double (row, MSG_COL_DECODE_SPEED);
  self->stopped = sqlite3_column_int (row, MSG_COL_STOPPED) != 0;
  self->finished = sqlite3_column_int (row, MSG_COL_FINISHED) != 0;
  return self;
}

gint64
tessera_history_message_get_id (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), 0);
  return self->id;
}

gint64
tessera_history_message_get_conversation_id (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), 0);
  return self->conversation_id;
}

TesseraHistoryRole
tessera_history_message_get_role (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), TESSERA_HISTORY_ROLE_USER);
  return self->role;
}

const char *
tessera_history_message_get_text (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), NULL);
  return self->text;
}

gint64
tessera_history_message_get_created (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), 0);
  return self->created;
}

int
tessera_history_message_get_hd_num (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), 0);
  return self->hd_num;
}

int
tessera_history_message_get_n_tokens (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), 0);
  return self->n_tokens;
}

double
tessera_history_message_get_prefill_speed (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), 0);
  return self->prefill_speed;
}

double
tessera_history_message_get_decode_speed (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), 0);
  return self->decode_speed;
}

gboolean
tessera_history_message_get_stopped (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), FALSE);
  return self->stopped;
}

gboolean
tessera_history_message_get_finished (TesseraHistoryMessage *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_MESSAGE (self), FALSE);
  return self->finished;
}
