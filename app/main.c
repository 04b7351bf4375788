/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * main.c — the `tessera` program. It also runs from the build tree without
 * being installed (that is what ./run.sh does), so it finds its settings
 * schema and translations there when the system has none.
 */
#include "config.h"

#include <locale.h>
#include <stdio.h>

#include <glib/gi18n.h>

#include "tessera-application.h"
#include "tessera-blas-setup.h"

static gboolean
schema_installed (void)
{
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr(GSettingsSchema) schema =
    source ? g_settings_schema_source_lookup (source, APP_ID, TRUE) : NULL;
  return schema != NULL;
}

/* Run from the build tree (./run.sh does), the program takes its schema and
 * translations from there; installed, it uses the system's. This must run
 * before the first GSettings call, which caches the schema source. */
static void
use_build_tree_when_uninstalled (void)
{
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *build_po = g_build_filename (BUILD_ROOT, "po", NULL);

  if (exe == NULL || !g_str_has_prefix (exe, BUILD_ROOT G_DIR_SEPARATOR_S))
    return;
  g_setenv ("GSETTINGS_SCHEMA_DIR", BUILD_DATADIR, TRUE);
  bindtextdomain (GETTEXT_PACKAGE, build_po);
}

int
main (int argc, char *argv[])
{
  g_autoptr(TesseraApplication) app = NULL;

  tessera_blas_setup (argv);
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  use_build_tree_when_uninstalled ();
  if (!schema_installed ())
    {
      fprintf (stderr, _("Tessera cannot start: its settings schema “%s” is not installed. "
                         "Run it with ./run.sh from the source tree, or install it with "
                         "“meson install -C build”.\n"), APP_ID);
      return 1;
    }

  app = tessera_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
