/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The kubelet's credentials and configuration, written onto the mounted state disk (never the
 * read-only root). Under STATE (the state volume's mount, /var in the real root):
 *
 *   lib/kubelet/                  0755
 *   lib/kubelet/kubeconfig        0600  cluster "cnos" (server https://<API endpoint>, CA ca.crt),
 *                                       user system:node:<name> (pki/kubelet-client.{crt,key})
 *   lib/kubelet/config.yaml       0644  KubeletConfiguration: x509 client CA ca.crt, webhook
 *                                       authn/authz, no anonymous access
 *   lib/kubelet/ca.crt            0644  the cluster CA (PEM)
 *   lib/kubelet/kubelet.env       0644  KUBELET_NODE_NAME=<name> from the certificate's CN, for
 *                                       kubelet.service's --hostname-override (the image's own
 *                                       hostname is the same on every node)
 *   lib/kubelet/pki/              0700
 *   lib/kubelet/pki/kubelet-client.crt  0644  the issued node certificate (PEM)
 *   lib/kubelet/pki/kubelet-client.key  0600  the node-generated key (PKCS#8 PEM); it never left
 *                                       the node, and leaves memory only for this file
 *
 * Paths inside kubeconfig and config.yaml are relative: kubectl and kubelet resolve them against
 * the file's own directory, so the layout works wherever STATE is mounted. Every file is written to
 * a temporary name, fsync()ed, renamed into place and its directory fsync()ed: a power cut leaves
 * the old file or the new one. The key's PEM lives only in OpenSSL's secure heap while written. */

#include "err.h"
#include "macro.h"
#include "ticket.h"

#define HANDOFF_DIR "lib/kubelet"
#define HANDOFF_MACHINE_ID_PATH "lib/dbus/machine-id"

/* The API endpoint as a kubeconfig server URL; endpoints with characters outside
 * [A-Za-z0-9.:[]-] are refused (-EINVAL), they would not be host:port anyway. */
_warn_unused_result_ int handoff_server_url(const char *endpoint, char **ret);

_warn_unused_result_ int handoff_write(const char *state_dir, const struct join_ticket *t, struct cnos_err *e);

/* The node's machine ID, kept on the state disk (STATE/lib/dbus/machine-id, 0444) so that it is the
 * same on every boot: the read-only root's /etc/machine-id is empty, and systemd (252) in the real
 * root takes /var/lib/dbus/machine-id before it would draw a random one. The journal then stays in
 * one directory across reboots (journalctl -b -1 works). Made on the first boot (random v4), kept
 * afterwards; *ret gets it as 32 hex digits. */
_warn_unused_result_ int handoff_machine_id(const char *state_dir, char ret[static 33], struct cnos_err *e);
