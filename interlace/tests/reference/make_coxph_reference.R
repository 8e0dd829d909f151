# Reference values for interlace's Cox partial likelihood without random effects
# (the "no-frailty" case of interlace.coxme) and for its copy of R's BFGS.
#
# Run from the repository root with Debian's R and survival (r-cran-survival):
#   Rscript interlace/tests/reference/make_coxph_reference.R
# Writes interlace/tests/reference/coxph/<case>.json and coxph/optim_bfgs.json.
# The data are the coxme reference data sets in reference/coxme/<case>/data.csv;
# the weighted cases use the weights w = 1 + (row %% 3) / 2 (row = 1, 2, ...).

suppressPackageStartupMessages(library(survival))
library(jsonlite)

root <- "interlace/tests/reference"
out_dir <- file.path(root, "coxph")
dir.create(out_dir, showWarnings = FALSE)

cases <- list(
  list(name = "lung_efron", data = "lung_inst", formula = Surv(time, status) ~ age + sex,
       python = "Surv(time, status) ~ age + sex", ties = "efron", weights = FALSE),
  list(name = "lung_breslow", data = "lung_inst", formula = Surv(time, status) ~ age + sex,
       python = "Surv(time, status) ~ age + sex", ties = "breslow", weights = FALSE),
  list(name = "retinopathy_efron", data = "retinopathy_id", formula = Surv(futime, status) ~ trt + type + risk,
       python = "Surv(futime, status) ~ trt + C(type) + risk", ties = "efron", weights = FALSE),
  list(name = "nested_breslow", data = "sim_nested", formula = Surv(time, status) ~ x1 + x2,
       python = "Surv(time, status) ~ x1 + x2", ties = "breslow", weights = FALSE),
  list(name = "lung_efron_weighted", data = "lung_inst", formula = Surv(time, status) ~ age + sex,
       python = "Surv(time, status) ~ age + sex", ties = "efron", weights = TRUE),
  list(name = "retinopathy_breslow_weighted", data = "retinopathy_id",
       formula = Surv(futime, status) ~ trt + type + risk,
       python = "Surv(futime, status) ~ trt + C(type) + risk", ties = "breslow", weights = TRUE)
)

for (cs in cases) {
  d <- read.csv(file.path(root, "coxme", cs$data, "data.csv"))
  d$w <- 1 + (seq_len(nrow(d)) %% 3) / 2
  fit <- if (cs$weights) {
    coxph(cs$formula, data = d, ties = cs$ties, weights = w, control = coxph.control(eps = 1e-12, toler.chol = 1e-14))
  } else {
    coxph(cs$formula, data = d, ties = cs$ties, control = coxph.control(eps = 1e-12, toler.chol = 1e-14))
  }
  default_iter <- if (cs$weights) {
    coxph(cs$formula, data = d, ties = cs$ties, weights = w)$iter
  } else {
    coxph(cs$formula, data = d, ties = cs$ties)$iter
  }
  # model-based variance (inverse information): coxph reports a robust variance by default
  # for non-integer case weights and keeps the model-based one in naive.var
  v <- if (!is.null(fit$naive.var)) fit$naive.var else fit$var
  res <- list(
    case = cs$name, data = file.path(root, "coxme", cs$data, "data.csv"),
    r_call = paste0("coxph(", deparse(cs$formula), ", ties = '", cs$ties, "'",
                    if (cs$weights) ", weights = 1 + (row %% 3) / 2" else "", ")"),
    python_formula = cs$python, ties = cs$ties, weights = cs$weights,
    coef = unname(coef(fit)), names = names(coef(fit)), se = unname(sqrt(diag(v))),
    vcov = unname(v), se_reported = unname(sqrt(diag(vcov(fit)))), loglik = unname(fit$loglik),
    iter_default = default_iter,
    nevent = fit$nevent, n = fit$n,
    packages = list(R = R.version.string, survival = as.character(packageVersion("survival")))
  )
  writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(out_dir, paste0(cs$name, ".json")))
}

# R's BFGS (vmmin) with its finite-difference gradient, on Rosenbrock's function and a
# quadratic: interlace.optimize.vmmin must follow the same path.
fr <- function(x) 100 * (x[2] - x[1]^2)^2 + (1 - x[1])^2
quad <- function(x) sum((x - c(1, -2, 0.5))^2 * c(1, 10, 100)) + 0.1 * x[1] * x[2]
runs <- list(
  rosenbrock = optim(c(-1.2, 1), fr, method = "BFGS"),
  rosenbrock_reltol = optim(c(1.5, -0.5), fr, method = "BFGS", control = list(reltol = 1e-5)),
  quadratic = optim(c(0, 0, 0), quad, method = "BFGS", control = list(reltol = 1e-5))
)
optim_out <- lapply(runs, function(r) list(par = r$par, value = r$value, counts = unname(r$counts),
                                            convergence = r$convergence))
writeLines(toJSON(optim_out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(out_dir, "optim_bfgs.json"))
