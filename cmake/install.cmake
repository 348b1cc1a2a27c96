# `cmake --install build --prefix DIR` puts, under DIR:
#   bin/mpicka                          the program
#   share/man/man1/mpicka.1             its man page, made from the --help texts at build time
#   share/mpicka/jobs/                  the Slurm job scripts and the sweep gatherer
#   share/mpicka/configs/               reference.yaml (every key annotated) and the examples
#   share/mpicka/python/                the Python package's sources (pip install DIR/share/mpicka/python)
#   share/doc/mpicka/                   README.md, LICENSE, docs/*, python/README.md (links kept)
#   lib/libmpicka.so, lib/libmpicka.a  mpicka as a C library (docs/library.md)
#   include/mpicka/session.h, error.h   its header, and the one it includes
#   lib/pkgconfig/mpicka.pc             for `pkg-config --cflags --libs mpicka`
include(GNUInstallDirs)

install(TARGETS mpicka RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(TARGETS mpicka_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_BINARY_DIR}/libmpicka.a DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES include/mpicka/session.h include/mpicka/error.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mpicka)
set(MK_PC_URING "")
if(MK_URING)
  set(MK_PC_URING liburing)
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/mpicka.pc.in ${PROJECT_BINARY_DIR}/mpicka.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/mpicka.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The man page: the program's own --help texts, so it cannot disagree with them.
set(mk_man ${PROJECT_BINARY_DIR}/mpicka.1)
add_custom_command(OUTPUT ${mk_man}
  COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:mpicka> -DOUT=${mk_man} -DVERSION=${PROJECT_VERSION}
          -P ${PROJECT_SOURCE_DIR}/cmake/manpage.cmake
  DEPENDS mpicka ${PROJECT_SOURCE_DIR}/cmake/manpage.cmake
  COMMENT "Writing the man page mpicka.1 from mpicka --help")
add_custom_target(mpicka_man ALL DEPENDS ${mk_man})
install(FILES ${mk_man} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

set(mk_share ${CMAKE_INSTALL_DATADIR}/mpicka)
install(PROGRAMS jobs/mpicka.sbatch jobs/mpicka-requeue.sbatch jobs/mpicka-sweep.sbatch
                 jobs/mpicka-sweep-gather.sh
        DESTINATION ${mk_share}/jobs)
install(FILES configs/reference.yaml configs/demo.yaml configs/seeds.yaml DESTINATION ${mk_share}/configs)
install(FILES python/pyproject.toml python/README.md DESTINATION ${mk_share}/python)
install(FILES python/mpicka/__init__.py python/mpicka/export.py python/mpicka/result.py python/mpicka/py.typed
        DESTINATION ${mk_share}/python/mpicka)

set(mk_doc ${CMAKE_INSTALL_DATADIR}/doc/mpicka)
install(FILES README.md LICENSE DESTINATION ${mk_doc})
install(DIRECTORY docs/ DESTINATION ${mk_doc}/docs FILES_MATCHING PATTERN "*.md" PATTERN "*.png")
install(FILES python/README.md DESTINATION ${mk_doc}/python)
