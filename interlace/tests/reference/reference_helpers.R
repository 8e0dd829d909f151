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
