/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "tessera-history"

#include "config.h"

#include "tessera-history-private.h"

struct _TesseraHistoryConversation
{
  GObject  parent_instance;

  gint64   id;
  char    *title;
  gint64   created;
  gint64   updated;
  int      hd_num;
  char    *model_name;
  gint64   model_size;
  char    *image_sha256;
  char    *image_name;
  int      image_width;
  int      image_height;
  gint64   image_size;
  char    *image_path;
  char    *thumbnail_path;
};

G_DEFINE_FINAL_TYPE (TesseraHistoryConversation, tessera_history_conversation, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_ID,
  PROP_TITLE,
  PROP_CREATED,
  PROP_UPDATED,
  PROP_HD_NUM,
  PROP_MODEL_NAME,
  PROP_MODEL_SIZE,
  PROP_IMAGE_SHA256,
  PROP_IMAGE_NAME,
  PROP_IMAGE_WIDTH,
  PROP_IMAGE_HEIGHT,
  PROP_IMAGE_SIZE,
  PROP_IMAGE_PATH,
  PROP_THUMBNAIL_PATH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
tessera_history_conversation_finalize (GObject *object)
{
  TesseraHistoryConversation *self = (TesseraHistoryConversation *) object;

  g_free (self->title);
  g_free (self->model_name);
  g_free (self->image_sha256);
  g_free (self->image_name);
  g_free (self->image_path);
  g_free (self->thumbnail_path);

  G_OBJECT_CLASS (tessera_history_conversation_parent_class)->finalize (object);
}

static void
tessera_history_conversation_get_property (GObject    *object,
                                           guint       prop_id,
                                           GValue     *value,
                                           GParamSpec *pspec)
{
  TesseraHistoryConversation *self = TESSERA_HISTORY_CONVERSATION (object);

  switch (prop_id)
    {
    case PROP_ID:             g_value_set_int64 (value, self->id); break;
    case PROP_TITLE:          g_value_set_string (value, self->title); break;
    case PROP_CREATED:        g_value_set_int64 (value, self->created); break;
    case PROP_UPDATED:        g_value_set_int64 (value, self->updated); break;
    case PROP_HD_NUM:         g_value_set_int (value, self->hd_num); break;
    case PROP_MODEL_NAME:     g_value_set_string (value, self->model_name); break;
    case PROP_MODEL_SIZE:     g_value_set_int64 (value, self->model_size); break;
    case PROP_IMAGE_SHA256:   g_value_set_string (value, self->image_sha256); break;
    case PROP_IMAGE_NAME:     g_value_set_string (value, self->image_name); break;
    case PROP_IMAGE_WIDTH:    g_value_set_int (value, self->image_width); break;
    case PROP_IMAGE_HEIGHT:   g_value_set_int (value, self->image_height); break;
    case PROP_IMAGE_SIZE:     g_value_set_int64 (value, self->image_size); break;
    case PROP_IMAGE_PATH:     g_value_set_string (value, self->image_path); break;
    case PROP_THUMBNAIL_PATH: g_value_set_string (value, self->thumbnail_path); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_history_conversation_class_init (TesseraHistoryConversationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags flags = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->finalize = tessera_history_conversation_finalize;
  object_class->get_property = tessera_history_conversation_get_property;

  properties[PROP_ID] = g_param_spec_int64 ("id", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_TITLE] = g_param_spec_string ("title", NULL, NULL, "", flags);
  properties[PROP_CREATED] = g_param_spec_int64 ("created", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_UPDATED] = g_param_spec_int64 ("updated", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_HD_NUM] = g_param_spec_int ("hd-num", NULL, NULL, 0, G_MAXINT, 0, flags);
  properties[PROP_MODEL_NAME] = g_param_spec_string ("model-name", NULL, NULL, NULL, flags);
  properties[PROP_MODEL_SIZE] = g_param_spec_int64 ("model-size", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_IMAGE_SHA256] = g_param_spec_string ("image-sha256", NULL, NULL, NULL, flags);
  properties[PROP_IMAGE_NAME] = g_param_spec_string ("image-name", NULL, NULL, NULL, flags);
  properties[PROP_IMAGE_WIDTH] = g_param_spec_int ("image-width", NULL, NULL, 0, G_MAXINT, 0, flags);
  properties[PROP_IMAGE_HEIGHT] = g_param_spec_int ("image-height", NULL, NULL, 0, G_MAXINT, 0, flags);
  properties[PROP_IMAGE_SIZE] = g_param_spec_int64 ("image-size", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_IMAGE_PATH] = g_param_spec_string ("image-path", NULL, NULL, NULL, flags);
  properties[PROP_THUMBNAIL_PATH] = g_param_spec_string ("thumbnail-path", NULL, NULL, NULL, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
tessera_history_conversation_init (TesseraHistoryConversation *self)
{
  self->title = g_strdup ("");
}

static const char *
column_text (sqlite3_stmt *row, int col)
{
  return (const char *) sqlite3_column_text (row, col);
}

static void
set_string (TesseraHistoryConversation *self, char **field, const char *value, int prop)
{
  if (g_strcmp0 (*field, value) == 0)
    return;
  g_free (*field);
  *field = g_strdup (value);
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

static void
set_int64 (TesseraHistoryConversation *self, gint64 *field, gint64 value, int prop)
{
  if (*field == value)
    return;
  *field = value;
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

static void
set_int (TesseraHistoryConversation *self, int *field, int value, int prop)
{
  if (*field == value)
    return;
  *field = value;
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

void
_tessera_history_conversation_update_from_row (TesseraHistoryConversation *self,
                                               sqlite3_stmt               *row,
                                               const char                 *data_dir)
{
  const char *sha = column_text (row, CONV_COL_IMAGE_SHA256);
  const char *stored = column_text (row, CONV_COL_IMAGE_PATH);
  g_autofree char *image_path = NULL;
  g_autofree char *thumbnail_path = NULL;

  /* Paths are kept relative in the database so that the data folder can
   * move; the items hand out absolute ones. */
  if (sha != NULL && stored != NULL)
    {
      g_autofree char *thumb_name = g_strconcat (sha, ".png", NULL);
      image_path = g_build_filename (data_dir, stored, NULL);
      thumbnail_path = g_build_filename (data_dir, "thumbnails", thumb_name, NULL);
    }

  g_object_freeze_notify (G_OBJECT (self));
  set_int64 (self, &self->id, sqlite3_column_int64 (row, CONV_COL_ID), PROP_ID);
  set_string (self, &self->title, column_text (row, CONV_COL_TITLE), PROP_TITLE);
  if (self->title == NULL)
    self->title = g_strdup ("");
  set_int64 (self, &self->created, sqlite3_column_int64 (row, CONV_COL_CREATED), PROP_CREATED);
  set_int64 (self, &self->updated, sqlite3_column_int64 (row, CONV_COL_UPDATED), PROP_UPDATED);
  set_int (self, &self->hd_num, sqlite3_column_int (row, CONV_COL_HD_NUM), PROP_HD_NUM);
  set_string (self, &self->model_name, column_text (row, CONV_COL_MODEL_NAME), PROP_MODEL_NAME);
  set_int64 (self, &self->model_size, sqlite3_column_int64 (row, CONV_COL_MODEL_SIZE),
             PROP_MODEL_SIZE);
  set_string (self, &self->image_sha256, sha, PROP_IMAGE_SHA256);
  set_string (self, &self->image_name, column_text (row, CONV_COL_IMAGE_NAME), PROP_IMAGE_NAME);
  set_int (self, &self->image_width, sqlite3_column_int (row, CONV_COL_IMAGE_WIDTH),
           PROP_IMAGE_WIDTH);
  set_int (self, &self->image_height, sqlite3_column_int (row, CONV_COL_IMAGE_HEIGHT),
           PROP_IMAGE_HEIGHT);
  set_int64 (self, &self->image_size, sqlite3_column_int64 (row, CONV_COL_IMAGE_BYTES),
             PROP_IMAGE_SIZE);
  set_string (self, &self->image_path, image_path, PROP_IMAGE_PATH);
  set_string (self, &self->thumbnail_path, thumbnail_path, PROP_THUMBNAIL_PATH);
  g_object_thaw_notify (G_OBJECT (self));
}

TesseraHistoryConversation *
_tessera_history_conversation_new_from_row (sqlite3_stmt *row, const char *data_dir)
{
  TesseraHistoryConversation *self = g_object_new (TESSERA_TYPE_HISTORY_CONVERSATION, NULL);
  _tessera_history_conversation_update_from_row (self, row, data_dir);
  return self;
}

gint64
tessera_history_conversation_get_id (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), 0);
  return self->id;
}

const char *
tessera_history_conversation_get_title (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), NULL);
  return self->title;
}

gint64
tessera_history_conversation_get_created (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), 0);
  return self->created;
}

gint64
tessera_history_conversation_get_updated (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), 0);
  return self->updated;
}

int
tessera_history_conversation_get_hd_num (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), 0);
  return self->hd_num;
}

const char *
tessera_history_conversation_get_model_name (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), NULL);
  return self->model_name;
}

gint64
tessera_history_conversation_get_model_size (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), 0);
  return self->model_size;
}

const char *
tessera_history_conversation_get_image_sha256 (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), NULL);
  return self->image_sha256;
}

const char *
tessera_history_conversation_get_image_name (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), NULL);
  return self->image_name;
}

int
tessera_history_conversation_get_image_width (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), 0);
  return self->image_width;
}

int
tessera_history_conversation_get_image_height (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), 0);
  return self->image_height;
}

gint64
tessera_history_conversation_get_image_size (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), 0);
  return self->image_size;
}

const char *
tessera_history_conversation_get_image_path (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), NULL);
  return self->image_path;
}

const char *
tessera_history_conversation_get_thumbnail_path (TesseraHistoryConversation *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_CONVERSATION (self), NULL);
  return self->thumbnail_path;
}
