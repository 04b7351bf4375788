/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-preferences.h — the preferences window: model file, threads, tile
 * budget and how answers are decoded, all kept in GSettings.
 */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define TESSERA_TYPE_PREFERENCES (tessera_preferences_get_type ())
G_DECLARE_FINAL_TYPE (TesseraPreferences, tessera_preferences, TESSERA, PREFERENCES, AdwPreferencesWindow)

/* A window transient for @parent (may be NULL) that reads and writes the
 * keys of @settings (schema io.github.tessera.Tessera) as they change; the
 * system prompt is written when its text view loses focus or the window
 * closes. The application reads the keys when a question starts. */
TesseraPreferences *tessera_preferences_new          (GtkWindow          *parent,
                                                      GSettings          *settings);

GSettings          *tessera_preferences_get_settings (TesseraPreferences *self);

G_END_DECLS
