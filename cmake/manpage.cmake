# Writes the man page mpicka.1 from the program's own --help texts, so the
# page never disagrees with the program (run at build time by CMakeLists.txt):
#   cmake -DEXE=build/mpicka -DOUT=build/mpicka.1 -DVERSION=0.1.0 -P cmake/manpage.cmake
# Each text goes into a no-fill block: the layout of --help is kept.
if(NOT EXE OR NOT OUT OR NOT VERSION)
  message(FATAL_ERROR "usage: cmake -DEXE=mpicka -DOUT=mpicka.1 -DVERSION=V -P manpage.cmake")
endif()
# --help needs no MPI; a sanitizer build would report the libraries' leaks.
set(ENV{ASAN_OPTIONS} "detect_leaks=0")

# text as roff inside .nf: backslashes escaped, no line read as a request.
function(mk_roff text out)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

function(mk_help args out)
  execute_process(COMMAND ${EXE} ${args} --help RESULT_VARIABLE rc OUTPUT_VARIABLE text ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${EXE} ${args} --help failed (${rc}): ${err}")
  endif()
  mk_roff("${text}" text)
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

mk_help("" main)
set(page ".TH MPICKA 1 \"\" \"mpicka ${VERSION}\" \"User Commands\"
.SH NAME
mpicka \\- layer-by-layer CKA between neural-network representations, over MPI
.SH SYNOPSIS
.nf
${main}.fi
.SH DESCRIPTION
mpicka computes the CKA matrix between the layers of two models (or of one
model with itself, or of many models) from activations stored in HDF5.
\\fBrun\\fR is an MPI program: start it with \\fBmpirun\\fR or \\fBsrun\\fR, one
process per rank. The other commands run alone.
.SH COMMANDS
")
foreach(cmd run check synth plot show)
  mk_help(${cmd} text)
  string(APPEND page ".SS ${cmd}\n.nf\n${text}.fi\n")
endforeach()
string(APPEND page ".SH EXIT STATUS
0 success; 2 usage or configuration error; 3 bad input (file, dataset, shape,
type, NaN or Inf); 4 I/O error; 5 out of memory; 6, 7 MPI or internal error;
75 stopped by SIGTERM, SIGINT or SIGUSR1 with a checkpoint written (the same
command resumes).
.SH FILES
.TP
.I share/mpicka/jobs/
Slurm job scripts (one run, a run across time limits, a sweep) and the sweep gatherer.
.TP
.I share/mpicka/configs/
\\fIreference.yaml\\fR (every key annotated) and example configs.
.TP
.I share/doc/mpicka/
README.md and the documentation pages (config.md, running.md, cluster.md, output.md, ...).
.SH SEE ALSO
\\fBmpirun\\fR(1), \\fBsbatch\\fR(1)
")
file(WRITE "${OUT}" "${page}")
