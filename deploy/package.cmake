# deploy/package.cmake - what `cmake --install` puts in place, and the Debian
# package (`cmake --build build --target package` ->
# build/branchsync_VERSION_amd64.deb): both binaries, the systemd unit, a
# `branchsync` system user (postinst), /etc/default/branchsync, the
# configuration examples and the docs.  Dependencies on the Debian
# libraries come from dpkg-shlibdeps.

include(GNUInstallDirs)

install(TARGETS branchsyncd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The unit names the daemon where this install puts it: configured at
# install time, so `cmake --install` (prefix /usr/local) and the package
# (prefix /usr) each get their own path.
install(CODE "
  set(BS_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(BS_DOCDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATAROOTDIR}/doc/branchsync\")
  configure_file(${CMAKE_CURRENT_SOURCE_DIR}/deploy/systemd/branchsyncd@.service.in
                 ${CMAKE_CURRENT_BINARY_DIR}/branchsyncd@.service @ONLY)
  file(INSTALL ${CMAKE_CURRENT_BINARY_DIR}/branchsyncd@.service
       DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
")
install(FILES README.md CHANGELOG.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        FILES_MATCHING PATTERN "*.md")
install(DIRECTORY deploy/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# (an absolute path: /etc whatever the prefix, as Debian wants it)
install(FILES deploy/debian/branchsync.default DESTINATION /etc/default
        RENAME branchsync)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME branchsync)
set(CPACK_PACKAGE_VENDOR branchsync)
set(CPACK_PACKAGE_CONTACT "branchsync maintainers <branchsync@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "replication server for a head office and its branch offices")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "Each office runs a branchsync node: a daemon with a local LMDB store that
 exchanges signed change sets with its peers over ZeroMQ, on a schedule or
 online, and resolves conflicting edits identically everywhere.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
# deploy/debian/conffiles: /etc/default/branchsync survives upgrades.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/postinst
    ${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/postrm
    ${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
