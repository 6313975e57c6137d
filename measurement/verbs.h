/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One function per cnos-measure command; argv[0] is the command name. Each returns the process
 * exit status (0 success, 1 refused/failed verification, 2 usage or input error). */

int verb_authenticode(int argc, char *argv[]);
int verb_eventlog(int argc, char *argv[]);
int verb_predict(int argc, char *argv[]);
int verb_manifest(int argc, char *argv[]);
int verb_sign(int argc, char *argv[]);
int verb_verify(int argc, char *argv[]);
