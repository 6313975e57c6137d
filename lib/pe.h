/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* PE/COFF images: a bounds-checked header and section-table parser, and the Authenticode image
 * digest that UEFI firmware extends into PCR 4 (EDK2 DxeTpm2MeasureBootLib / the PE/COFF
 * Authenticode specification): the file is hashed with the CheckSum field and the Certificate Table
 * data-directory entry left out, sections in order of their file offset, then any trailing data up
 * to the attribute certificate table. No padding is added. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

#define PE_MAX_SECTIONS 96 /* the PE spec's loader limit */

struct pe_section {
        char name[9]; /* up to 8 bytes of the header name, NUL-terminated */
        uint32_t virtual_size;
        uint32_t virtual_address;
        uint32_t raw_size;   /* SizeOfRawData */
        uint32_t raw_offset; /* PointerToRawData */
};

struct pe_image {
        const uint8_t *data; /* borrowed: the caller keeps the buffer alive */
        size_t size;
        bool pe32plus;
        uint16_t machine;
        uint32_t size_of_headers;
        uint32_t size_of_image;
        size_t checksum_offset; /* file offset of OptionalHeader.CheckSum */
        size_t certdir_offset;  /* file offset of the Certificate Table directory entry, 0 if absent */
        uint32_t cert_offset;   /* the attribute certificate table (file offset and size), 0 if none */
        uint32_t cert_size;
        size_t n_sections;
        struct pe_section *sections; /* in section-table order */
};

struct byte_range {
        size_t offset;
        size_t size;
};

/* Parses and validates the headers and section table. Rejects, with the offending offset in `e`:
 * a missing MZ/PE signature, truncated headers, an optional header too small for its data
 * directories, zero or more than PE_MAX_SECTIONS sections, a section table beyond SizeOfHeaders, a
 * section whose raw data lies outside the file or whose PointerToRawData + SizeOfRawData overflows
 * 32 bits, sections whose raw data overlap each other or the headers, and a certificate table
 * outside the file or overlapping the headers or a section. On success `ret` borrows `data`. */
_warn_unused_result_ int pe_parse(const void *data, size_t size, struct pe_image *ret, struct cnos_err *e);
void pe_image_done(struct pe_image *img);

/* First section with this exact name, or NULL. */
const struct pe_section *pe_find_section(const struct pe_image *img, const char *name);

/* The byte ranges of the file, in hashing order, whose concatenation is the Authenticode input.
 * Returned array is malloc'ed. Separating the ranges from the hashing lets callers hash one image
 * with several algorithms or in parallel. */
_warn_unused_result_ int pe_authenticode_ranges(
                const struct pe_image *img, struct byte_range **ret, size_t *ret_n, struct cnos_err *e);

/* Convenience: the Authenticode digest of the image with one algorithm. `out` holds
 * cnos_hash_size(h) bytes. */
_warn_unused_result_ int pe_authenticode(const struct pe_image *img, enum cnos_hash h, uint8_t *out, struct cnos_err *e);
