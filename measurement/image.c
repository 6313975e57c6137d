/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>

#include "cursor.h"
#include "image.h"

#define GPT_MAX_ENTRIES 1024U

/* C12A7328-F81F-11D2-BA4B-00A0C93EC93B in its on-disk (mixed-endian) form. */
static const uint8_t esp_type_guid[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
                                           0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };

/* CRC-32 (IEEE 802.3, reflected), as the GPT header and entry array use. */
static uint32_t crc32_ieee(uint32_t crc, const uint8_t *p, size_t n) {
        crc = ~crc;
        while (n--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (0xEDB88320U & (0U - (crc & 1U)));
        }
        return ~crc;
}

static int gpt_parse_at(const uint8_t *img, size_t size, size_t lba_size, struct gpt_partition *ret, struct cnos_err *e) {
        struct cursor c = cursor_init(img, size);
        const uint8_t *hdr, *entries;
        uint32_t header_size, header_crc, n_entries, entry_size, entries_crc;
        uint64_t entries_lba;
        uint8_t tmp[512];
        size_t total, n_esp = 0;
        int r;

        r = cursor_at(&c, lba_size, 92, &hdr);
        if (r < 0)
                return cnos_err_set(e, -EBADMSG, "GPT header at offset 0x%zx: image too short", lba_size);
        if (memcmp(hdr, "EFI PART", 8) != 0)
                return cnos_err_set(e, -ENOENT, "no GPT header at offset 0x%zx", lba_size);

        header_size = load_le32(hdr + 12);
        header_crc = load_le32(hdr + 16);
        entries_lba = load_le64(hdr + 72);
        n_entries = load_le32(hdr + 80);
        entry_size = load_le32(hdr + 84);
        entries_crc = load_le32(hdr + 88);

        if (header_size < 92 || header_size > sizeof(tmp) || header_size > lba_size)
                return cnos_err_set(e, -EBADMSG, "GPT header at offset 0x%zx: header size %u out of range", lba_size,
                                    header_size);
        r = cursor_at(&c, lba_size, header_size, &hdr);
        if (r < 0)
                return cnos_err_set(e, -EBADMSG, "GPT header at offset 0x%zx: truncated", lba_size);
        memcpy(tmp, hdr, header_size);
        memset(tmp + 16, 0, 4);
        if (crc32_ieee(0, tmp, header_size) != header_crc)
                return cnos_err_set(e, -EBADMSG, "GPT header at offset 0x%zx: CRC mismatch", lba_size);

        if (entry_size < 128 || entry_size % 8 != 0 || entry_size > 4096)
                return cnos_err_set(e, -EBADMSG, "GPT header: partition entry size %u out of range", entry_size);
        if (n_entries == 0 || n_entries > GPT_MAX_ENTRIES)
                return cnos_err_set(e, -EBADMSG, "GPT header: %u partition entries (limit %u)", n_entries,
                                    GPT_MAX_ENTRIES);
        if (entries_lba > SIZE_MAX / lba_size)
                return cnos_err_set(e, -EBADMSG, "GPT header: entry array LBA %" PRIu64 " out of range", entries_lba);
        total = (size_t) n_entries * entry_size;
        r = cursor_at(&c, (size_t) entries_lba * lba_size, total, &entries);
        if (r < 0)
                return cnos_err_set(e, -EBADMSG, "GPT entry array at LBA %" PRIu64 " (%zu bytes) lies outside the image",
                                    entries_lba, total);
        if (crc32_ieee(0, entries, total) != entries_crc)
                return cnos_err_set(e, -EBADMSG, "GPT entry array at offset 0x%zx: CRC mismatch",
                                    (size_t) entries_lba * lba_size);

        for (uint32_t i = 0; i < n_entries; i++) {
                const uint8_t *p = entries + (size_t) i * entry_size;
                struct gpt_partition part;

                if (memcmp(p, esp_type_guid, 16) != 0)
                        continue;
                memcpy(part.type_guid, p, 16);
                memcpy(part.unique_guid, p + 16, 16);
                part.first_lba = load_le64(p + 32);
                part.last_lba = load_le64(p + 40);
                if (part.last_lba < part.first_lba || part.last_lba >= SIZE_MAX / lba_size - 1)
                        return cnos_err_set(e, -EBADMSG, "GPT entry %u: LBA range %" PRIu64 "-%" PRIu64 " invalid", i,
                                            part.first_lba, part.last_lba);
                part.offset = (size_t) part.first_lba * lba_size;
                part.size = (size_t) (part.last_lba - part.first_lba + 1) * lba_size;
                if (part.offset > size || part.size > size - part.offset)
                        return cnos_err_set(e, -EBADMSG, "GPT entry %u: partition at offset 0x%zx (%zu bytes) extends past the image end",
                                            i, part.offset, part.size);
                if (++n_esp > 1)
                        return cnos_err_set(e, -EBADMSG, "GPT has more than one EFI system partition (entry %u)", i);
                *ret = part;
        }
        if (n_esp == 0)
                return cnos_err_set(e, -ENOENT, "GPT has no EFI system partition");
        return 0;
}

int gpt_find_esp(const uint8_t *img, size_t size, struct gpt_partition *ret, struct cnos_err *e) {
        struct cnos_err first = {};
        int r;

        r = gpt_parse_at(img, size, 512, ret, &first);
        if (r != -ENOENT || strncmp(first.msg, "no GPT header", 13) != 0) {
                if (r < 0)
                        return cnos_err_set(e, r, "%s", first.msg);
                return 0;
        }
        r = gpt_parse_at(img, size, 4096, ret, e);
        if (r == -ENOENT && e && strncmp(e->msg, "no GPT header", 13) == 0) {
                cnos_err_clear(e);
                return cnos_err_set(e, -ENOENT, "not a GPT disk image (no \"EFI PART\" header at offset 0x200 or 0x1000)");
        }
        return r;
}

struct fat {
        const uint8_t *fs;
        size_t size;
        unsigned type; /* 12, 16 or 32 */
        size_t bytes_per_sector, cluster_bytes;
        size_t fat_offset, fat_bytes;
        size_t root_offset, root_bytes; /* FAT12/16 fixed root directory */
        uint32_t root_cluster;          /* FAT32 */
        size_t data_offset;
        uint32_t n_clusters;
};

static int fat_open(const uint8_t *fs, size_t size, struct fat *ret, struct cnos_err *e) {
        const uint8_t *b;
        struct cursor c = cursor_init(fs, size);
        uint32_t bps, spc, reserved, n_fats, root_entries, total, fat_sectors, root_sectors, data_sectors;
        struct fat f = { .fs = fs, .size = size };

        if (cursor_at(&c, 0, 512, &b) < 0)
                return cnos_err_set(e, -EBADMSG, "FAT boot sector: partition shorter than 512 bytes");
        if (b[510] != 0x55 || b[511] != 0xAA)
                return cnos_err_set(e, -EBADMSG, "FAT boot sector: no 0x55AA signature at offset 0x1fe");
        bps = load_le16(b + 11);
        spc = b[13];
        reserved = load_le16(b + 14);
        n_fats = b[16];
        root_entries = load_le16(b + 17);
        total = load_le16(b + 19) ? load_le16(b + 19) : load_le32(b + 32);
        fat_sectors = load_le16(b + 22) ? load_le16(b + 22) : load_le32(b + 36);

        if (bps != 512 && bps != 1024 && bps != 2048 && bps != 4096)
                return cnos_err_set(e, -EBADMSG, "FAT boot sector: bytes per sector %u invalid (offset 0xb)", bps);
        if (spc == 0 || (spc & (spc - 1)) != 0)
                return cnos_err_set(e, -EBADMSG, "FAT boot sector: sectors per cluster %u invalid (offset 0xd)", spc);
        if (reserved == 0 || n_fats == 0 || n_fats > 4 || fat_sectors == 0)
                return cnos_err_set(e, -EBADMSG, "FAT boot sector: reserved=%u fats=%u fat-size=%u invalid", reserved,
                                    n_fats, fat_sectors);
        if ((uint64_t) total * bps > size)
                return cnos_err_set(e, -EBADMSG, "FAT boot sector: %u sectors of %u bytes exceed the partition (%zu bytes)",
                                    total, bps, size);

        root_sectors = (root_entries * 32U + bps - 1) / bps;
        uint64_t first_data = (uint64_t) reserved + (uint64_t) n_fats * fat_sectors + root_sectors;
        if (first_data >= total)
                return cnos_err_set(e, -EBADMSG, "FAT boot sector: metadata (%" PRIu64 " sectors) fills the volume", first_data);
        data_sectors = total - (uint32_t) first_data;

        f.bytes_per_sector = bps;
        f.cluster_bytes = (size_t) bps * spc;
        f.n_clusters = data_sectors / spc;
        f.type = f.n_clusters < 4085 ? 12 : f.n_clusters < 65525 ? 16 : 32;
        f.fat_offset = (size_t) reserved * bps;
        f.fat_bytes = (size_t) fat_sectors * bps;
        f.root_offset = f.fat_offset + (size_t) n_fats * f.fat_bytes;
        f.root_bytes = (size_t) root_sectors * bps;
        f.data_offset = (size_t) first_data * bps;
        if (f.type == 32) {
                f.root_cluster = load_le32(b + 44);
                if (root_entries != 0)
                        return cnos_err_set(e, -EBADMSG, "FAT32 boot sector: non-zero root entry count");
        } else if (root_entries == 0)
                return cnos_err_set(e, -EBADMSG, "FAT%u boot sector: zero root directory entries", f.type);

        /* The FAT must be able to describe every cluster. */
        uint64_t need = f.type == 12 ? ((uint64_t) f.n_clusters + 2) * 3 / 2 + 1 : ((uint64_t) f.n_clusters + 2) * (f.type / 8);
        if (need > f.fat_bytes)
                return cnos_err_set(e, -EBADMSG, "FAT%u: table of %zu bytes too small for %u clusters", f.type, f.fat_bytes,
                                    f.n_clusters);
        *ret = f;
        return 0;
}

/* Next cluster in the chain; 0 at end of chain; negative on a corrupt entry. */
static int64_t fat_next(const struct fat *f, uint32_t cl, struct cnos_err *e) {
        const uint8_t *t = f->fs + f->fat_offset;
        uint32_t v, eoc;

        switch (f->type) {
        case 12: {
                size_t off = cl + cl / 2;
                uint16_t w = load_le16(t + off);
                v = (cl & 1) ? (w >> 4) : (w & 0xFFF);
                eoc = 0xFF8;
                break;
        }
        case 16:
                v = load_le16(t + (size_t) cl * 2);
                eoc = 0xFFF8;
                break;
        default:
                v = load_le32(t + (size_t) cl * 4) & 0x0FFFFFFF;
                eoc = 0x0FFFFFF8;
                break;
        }
        if (v >= eoc)
                return 0;
        if (v < 2 || v >= (uint64_t) f->n_clusters + 2)
                return cnos_err_set(e, -EBADMSG, "FAT%u: cluster %u links to invalid cluster 0x%x", f->type, cl, v);
        return v;
}

static int fat_cluster_ptr(const struct fat *f, uint32_t cl, const uint8_t **ret, struct cnos_err *e) {
        if (cl < 2 || cl >= (uint64_t) f->n_clusters + 2)
                return cnos_err_set(e, -EBADMSG, "FAT%u: cluster number %u out of range", f->type, cl);
        size_t off = f->data_offset + (size_t) (cl - 2) * f->cluster_bytes;
        if (off > f->size || f->cluster_bytes > f->size - off)
                return cnos_err_set(e, -EBADMSG, "FAT%u: cluster %u lies outside the partition", f->type, cl);
        *ret = f->fs + off;
        return 0;
}

static void to_short_name(const char *comp, size_t len, char out[11]) {
        const char *dot = memchr(comp, '.', len);
        size_t base = dot ? (size_t) (dot - comp) : len, ext = dot ? len - base - 1 : 0;

        memset(out, ' ', 11);
        for (size_t i = 0; i < base && i < 8; i++)
                out[i] = (char) toupper((unsigned char) comp[i]);
        for (size_t i = 0; i < ext && i < 3; i++)
                out[8 + i] = (char) toupper((unsigned char) dot[1 + i]);
}

struct dirent_hit {
        uint32_t cluster;
        uint32_t size;
        bool is_dir;
};

static int match_entries(const uint8_t *p, size_t n, const char want[11], struct dirent_hit *hit, bool *ended) {
        for (size_t i = 0; i + 32 <= n; i += 32) {
                const uint8_t *d = p + i;
                uint8_t attr = d[11];

                if (d[0] == 0) {
                        *ended = true;
                        return 0;
                }
                if (d[0] == 0xE5 || attr == 0x0F || (attr & 0x08))
                        continue;
                char name[11];
                for (int k = 0; k < 11; k++)
                        name[k] = (char) toupper(d[k]);
                if (memcmp(name, want, 11) != 0)
                        continue;
                hit->cluster = ((uint32_t) load_le16(d + 20) << 16) | load_le16(d + 26);
                hit->size = load_le32(d + 28);
                hit->is_dir = attr & 0x10;
                return 1;
        }
        return 0;
}

static int fat_lookup(const struct fat *f, uint32_t dir_cluster, const char want[11], struct dirent_hit *hit, struct cnos_err *e) {
        bool ended = false;
        int r;

        if (dir_cluster == 0) { /* FAT12/16 root */
                if (f->root_offset > f->size || f->root_bytes > f->size - f->root_offset)
                        return cnos_err_set(e, -EBADMSG, "FAT%u: root directory lies outside the partition", f->type);
                r = match_entries(f->fs + f->root_offset, f->root_bytes, want, hit, &ended);
                return r > 0 ? 0 : -ENOENT;
        }

        uint32_t cl = dir_cluster;
        for (uint32_t steps = 0; cl != 0; steps++) {
                const uint8_t *p;
                int64_t next;

                if (steps > f->n_clusters)
                        return cnos_err_set(e, -ELOOP, "FAT%u: directory cluster chain loops (from cluster %u)", f->type,
                                            dir_cluster);
                r = fat_cluster_ptr(f, cl, &p, e);
                if (r < 0)
                        return r;
                r = match_entries(p, f->cluster_bytes, want, hit, &ended);
                if (r > 0)
                        return 0;
                if (ended)
                        break;
                next = fat_next(f, cl, e);
                if (next < 0)
                        return (int) next;
                cl = (uint32_t) next;
        }
        return -ENOENT;
}

int fat_read_file(const uint8_t *fs, size_t size, const char *path, const uint8_t **ret, size_t *ret_size,
                  uint8_t **ret_copy, struct cnos_err *e) {
        struct fat f = {};
        struct dirent_hit hit = {};
        uint32_t dir;
        const char *p = path;
        int r;

        r = fat_open(fs, size, &f, e);
        if (r < 0)
                return r;
        dir = f.type == 32 ? f.root_cluster : 0;

        for (;;) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t) (slash - p) : strlen(p);
                char want[11];

                to_short_name(p, len, want);
                r = fat_lookup(&f, dir, want, &hit, e);
                if (r == -ENOENT)
                        return cnos_err_set(e, -ENOENT, "%s: not found in the FAT file system", path);
                if (r < 0)
                        return r;
                if (!slash)
                        break;
                if (!hit.is_dir)
                        return cnos_err_set(e, -ENOTDIR, "%.*s: not a directory", (int) (slash - path), path);
                dir = hit.cluster;
                if (dir == 0 && f.type == 32)
                        dir = f.root_cluster;
                p = slash + 1;
        }
        if (hit.is_dir)
                return cnos_err_set(e, -EISDIR, "%s: is a directory", path);

        size_t fsize = hit.size;
        if (fsize == 0) {
                *ret = fs;
                *ret_size = 0;
                *ret_copy = NULL;
                return 0;
        }

        /* Walk the chain once to check it and find out whether it is contiguous. */
        size_t need = (fsize + f.cluster_bytes - 1) / f.cluster_bytes, n = 0;
        bool contiguous = true;
        uint32_t cl = hit.cluster;
        const uint8_t *first = NULL;
        while (cl != 0) {
                const uint8_t *cp;
                int64_t next;

                if (++n > need)
                        return cnos_err_set(e, -EBADMSG, "%s: cluster chain longer than its size (%zu bytes)", path, fsize);
                r = fat_cluster_ptr(&f, cl, &cp, e);
                if (r < 0)
                        return r;
                if (!first)
                        first = cp;
                next = fat_next(&f, cl, e);
                if (next < 0)
                        return (int) next;
                if (next != 0 && next != (int64_t) cl + 1)
                        contiguous = false;
                cl = (uint32_t) next;
        }
        if (n != need)
                return cnos_err_set(e, -EBADMSG, "%s: cluster chain of %zu clusters too short for %zu bytes", path, n, fsize);

        if (contiguous) {
                *ret = first;
                *ret_size = fsize;
                *ret_copy = NULL;
                return 0;
        }

        _cleanup_free_ uint8_t *buf = malloc(fsize);
        if (!buf)
                return -ENOMEM;
        size_t done = 0;
        for (cl = hit.cluster; cl != 0 && done < fsize;) {
                const uint8_t *cp;
                int64_t next;

                r = fat_cluster_ptr(&f, cl, &cp, e);
                if (r < 0)
                        return r;
                size_t k = MIN(f.cluster_bytes, fsize - done);
                memcpy(buf + done, cp, k);
                done += k;
                next = fat_next(&f, cl, e);
                if (next < 0)
                        return (int) next;
                cl = (uint32_t) next;
        }
        *ret = buf;
        *ret_size = fsize;
        *ret_copy = TAKE_PTR(buf);
        return 0;
}

int image_find_uki(const uint8_t *img, size_t size, const uint8_t **ret, size_t *ret_size, uint8_t **ret_copy,
                   struct cnos_err *e) {
        struct gpt_partition esp;
        int r;

        r = gpt_find_esp(img, size, &esp, e);
        if (r < 0)
                return r;
        r = fat_read_file(img + esp.offset, esp.size, "EFI/BOOT/BOOTX64.EFI", ret, ret_size, ret_copy, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "ESP at offset 0x%zx: ", esp.offset);
        return 0;
}
