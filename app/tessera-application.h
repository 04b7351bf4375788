/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-application.h — the application: windows, files from the command
 * line, the About window.
 */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define TESSERA_TYPE_APPLICATION (tessera_application_get_type ())
G_DECLARE_FINAL_TYPE (TesseraApplication, tessera_application, TESSERA, APPLICATION, AdwApplication)

TesseraApplication *tessera_application_new (void);

G_END_DECLS
