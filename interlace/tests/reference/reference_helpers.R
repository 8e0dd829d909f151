## Helpers shared by the reference scripts (make_lmer/glmer/clmm_reference.R): CSV files
## that round-trip exactly (factors as labels, no quoting, NA as an empty field, doubles
## written with as many digits as they need), and JSON vectors that stay arrays.
## Sourced from the repository root.

check_labels <- function(df) {
  for (nm in names(df)) {
    v <- df[[nm]]
    if (is.factor(v) || is.character(v)) {
      lab <- as.character(v)
      if (any(grepl("[,\"\n]", lab[!is.na(lab)]))) stop("label with comma/quote in ", nm)
      if (any(lab[!is.na(lab)] == "")) stop("empty label in ", nm)
    }
  }
  invisible(TRUE)
}

## numeric columns that write.csv's 15 significant digits would not round-trip are
## formatted with the shortest %.15g / %.16g / %.17g representation that does
exact_numeric <- function(df) {
  for (nm in names(df)) {
    v <- df[[nm]]
    if (is.double(v)) {
      ok <- is.na(v) | as.numeric(as.character(v)) == v
      if (!all(ok)) {
        s <- ifelse(is.na(v), NA_character_, sprintf("%.15g", v))
        for (dg in 16:17) {
          bad <- !is.na(v) & as.numeric(s) != v
          s[bad] <- sprintf(paste0("%.", dg, "g"), v[bad])
        }
        stopifnot(all(is.na(v) | as.numeric(s) == v))
        df[[nm]] <- s
      }
    }
  }
  df
}

write_csv_plain <- function(df, path) {
  check_labels(df)
  df <- exact_numeric(df)
  con <- if (grepl("\\.gz$", path)) gzfile(path, "w") else file(path, "w")
  on.exit(close(con))
  write.csv(df, con, row.names = FALSE, quote = FALSE, na = "")
}

read_csv_plain <- function(path) {
  read.csv(path, stringsAsFactors = TRUE, na.strings = "")
}

## a real dataset must round-trip exactly through its CSV (values and labels)
check_roundtrip <- function(df, path) {
  back <- read.csv(path, stringsAsFactors = FALSE, na.strings = "",
                   colClasses = "character")
  stopifnot(identical(names(back), names(df)), nrow(back) == nrow(df))
  for (nm in names(df)) {
    v <- df[[nm]]
    if (is.numeric(v)) {
      if (!identical(as.numeric(back[[nm]]), as.numeric(v))) stop("numeric round-trip failed: ", path, " ", nm)
    } else {
      if (!identical(back[[nm]], as.character(v))) stop("label round-trip failed: ", path, " ", nm)
    }
  }
}

r6 <- function(x) round(x, 6)
lab <- function(prefix, i, width) sprintf(paste0("%s%0", width, "d"), prefix, i)
vec <- function(x) I(unname(as.vector(x)))   # keep as JSON array even if length 1

## Export the real datasets of a reference script and append their provenance lines to
## interlace/datasets/data/README.md under a header naming the script (only lines not
## yet present are appended, so reruns and other scripts' lines are left alone).
write_real_datasets <- function(real, real_desc, real_rname, real_dir, script, pkg, version) {
  readme_path <- file.path(real_dir, "README.md")
  readme_old <- if (file.exists(readme_path)) readLines(readme_path) else character()
  readme_new <- c("",
                  sprintf("Also written by `interlace/tests/reference/%s` (R %s.%s, %s %s), same conventions:",
                          script, R.version$major, R.version$minor, pkg, version),
                  "")
  for (nm in names(real)) {
    path <- file.path(real_dir, paste0(nm, ".csv"))
    write_csv_plain(real[[nm]], path)
    check_roundtrip(real[[nm]], path)
    readme_new <- c(readme_new, sprintf("- `%s.csv`: %s %s `%s`, %d rows. Columns: %s.",
                                        nm, pkg, version, real_rname[[nm]], nrow(real[[nm]]), real_desc[[nm]]))
  }
  add <- readme_new[readme_new != "" & !(readme_new %in% readme_old)]
  if (length(add)) {
    hdr <- readme_new[2]
    if (hdr %in% add) add <- c("", hdr, "", setdiff(add, hdr))
    cat(paste0(add, "\n"), file = readme_path, append = TRUE, sep = "")
  }
  invisible(NULL)
}

## ranef(m, condVar = TRUE) as JSON: levels, columns and conditional SDs per grouping
## factor (terms sharing a factor, e.g. (x || g), give a list of postVar arrays)
ranef_json <- function(m) {
  re <- ranef(m, condVar = TRUE)
  out <- lapply(names(re), function(g) {
    d <- re[[g]]
    pv <- attr(d, "postVar")
    if (is.null(pv)) pv <- attr(d, "condVar")
    if (is.list(pv)) {
      sds <- unlist(lapply(pv, function(a) lapply(seq_len(dim(a)[1]), function(k) sqrt(a[k, k, ]))),
                    recursive = FALSE)
    } else {
      sds <- lapply(seq_len(dim(pv)[1]), function(k) sqrt(pv[k, k, ]))
    }
    sds <- lapply(sds, vec)
    names(sds) <- names(d)
    list(levels = vec(rownames(d)),
         columns = setNames(lapply(names(d), function(cn) vec(d[[cn]])), names(d)),
         condsd = sds)
  })
  names(out) <- names(re)
  out
}

## as.data.frame(VarCorr(m)) rows as JSON objects
varcorr_json <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  lapply(seq_len(nrow(vc)), function(i)
    list(grp = vc$grp[i], var1 = vc$var1[i], var2 = vc$var2[i], vcov = vc$vcov[i], sdcor = vc$sdcor[i]))
}
