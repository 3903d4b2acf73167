; NSIS additions for the Lab Gateway Tray installer (electron-builder `nsis.include`).
; - Asks for the gateway's address on a page after the install directory, or takes it from the
;   command line for unattended installs:   "Lab Gateway Tray Setup.exe" /S /GATEWAY_URL=http://10.0.0.5:8484
; - Writes it to <install dir>\resources\tray-config.json, which the tray reads at start
;   (desktop/src/tray-config.ts: command line > environment > user file > this file > default).
; - An upgrade keeps the installed address: the page starts with it, and an unattended upgrade
;   without /GATEWAY_URL= leaves the file as it was (with every other setting IT wrote there:
;   mqttUrl, adminTokenFile…). electron-builder's upgrade removes the old files and extracts the
;   new ones, the default tray-config.json among them, so the installed file is copied aside in
;   customInit, before anything is removed, and put back (or its address replaced) in customInstall.
; - An address without a scheme is completed with http:// (10.0.0.5:8484 → http://10.0.0.5:8484);
;   one the tray would refuse (another scheme, a user name or password, quotes, spaces) is refused:
;   on the page with a message, and unattended with exit code 2 before anything is installed.
; - Starts the tray at every login (HKLM Run key), removed by the uninstaller.
; Built and run in the tests with Debian's makensis (test/unit/tray-installer-nsis.test.ts).
!include "nsDialogs.nsh"
!include "LogicLib.nsh"
!include "FileFunc.nsh"

!ifndef BUILD_UNINSTALLER
  !define LAB_GATEWAY_DEFAULT_URL "http://127.0.0.1:8484"
  !define LAB_GATEWAY_URL_KEY '"gatewayUrl"'

  Var LabGatewayUrl
  Var LabGatewayUrlField
  ; The installed tray-config.json, copied aside ("" on a first install), and the address the
  ; page started with from it (its gatewayUrl, or the default the tray uses when it has none).
  Var LabGatewayKeptFile
  Var LabGatewayKeptUrl

  ; Index of the first occurrence of a text in a string, or -1.
  ;   Push <string>; Push <text>; Call LabGatewayFind; Pop <index>
  Function LabGatewayFind
    Exch $1 ; text
    Exch
    Exch $0 ; string
    Push $2
    Push $3
    Push $4
    Push $5
    StrLen $2 $1
    StrLen $3 $0
    StrCpy $4 0
    ${Do}
      IntOp $5 $4 + $2
      ${If} $5 > $3
        StrCpy $4 -1
        ${ExitDo}
      ${EndIf}
      StrCpy $5 $0 $2 $4
      ${If} $5 S== $1
        ${ExitDo}
      ${EndIf}
      IntOp $4 $4 + 1
    ${Loop}
    StrCpy $0 $4
    Pop $5
    Pop $4
    Pop $3
    Pop $2
    Exch $0
    Exch
    Pop $1
  FunctionEnd

  ; Where the gatewayUrl value is in one line of a JSON file: its first character and its length,
  ; or -1 and 0 when the line has no `"gatewayUrl": "…"`.
  ;   Push <line>; Call LabGatewayUrlSpan; Pop <start>; Pop <length>
  Function LabGatewayUrlSpan
    Exch $0 ; line
    Push $1
    Push $2
    Push $3
    Push $0
    Push '${LAB_GATEWAY_URL_KEY}'
    Call LabGatewayFind
    Pop $1
    StrCpy $3 0
    ${If} $1 >= 0
      IntOp $1 $1 + 12 ; past "gatewayUrl"
      ; blanks, the colon, blanks, then the opening quote
      StrCpy $3 0 ; colon seen
      ${Do}
        StrCpy $2 $0 1 $1
        ${If} $2 == " "
        ${OrIf} $2 == "$\t"
          IntOp $1 $1 + 1
        ${ElseIf} $2 == ":"
        ${AndIf} $3 == 0
          StrCpy $3 1
          IntOp $1 $1 + 1
        ${ElseIf} $2 == '"'
        ${AndIf} $3 == 1
          IntOp $1 $1 + 1
          ${ExitDo}
        ${Else}
          StrCpy $1 -1
          ${ExitDo}
        ${EndIf}
      ${Loop}
    ${EndIf}
    StrCpy $3 0
    ${If} $1 >= 0
      StrCpy $2 $0 "" $1
      Push $2
      Push '"'
      Call LabGatewayFind
      Pop $3
      ${If} $3 < 0
        StrCpy $1 -1
        StrCpy $3 0
      ${EndIf}
    ${EndIf}
    StrCpy $0 $1
    Exch $3 ; length on the stack, $3 back
    Exch 2
    Pop $1
    Pop $2
    Exch
    Exch $0 ; start on top, $0 back
  FunctionEnd

  ; The gatewayUrl of a tray-config.json, or "".
  ;   Push <file>; Call LabGatewayUrlOf; Pop <url>
  Function LabGatewayUrlOf
    Exch $0 ; file
    Push $1
    Push $2
    Push $3
    Push $4
    StrCpy $4 ""
    ClearErrors
    FileOpen $1 $0 r
    ${IfNot} ${Errors}
      ${Do}
        ClearErrors
        FileRead $1 $2
        ${If} ${Errors}
          ${ExitDo}
        ${EndIf}
        Push $2
        Call LabGatewayUrlSpan
        Pop $3 ; start
        Pop $0 ; length
        ${If} $3 >= 0
          StrCpy $4 $2 $0 $3
          ${ExitDo}
        ${EndIf}
      ${Loop}
      FileClose $1
    ${EndIf}
    StrCpy $0 $4
    Pop $4
    Pop $3
    Pop $2
    Pop $1
    Exch $0
  FunctionEnd

  ; The value of /GATEWAY_URL= on the installer's command line: up to the next blank, or between
  ; quotes (/GATEWAY_URL="http://10.0.0.5:8484"). FileFunc's GetOptions cannot be used: it ends
  ; an option's value at the next "/", so it read http://10.0.0.5:8484 as "http:".
  ;   Call LabGatewayUrlOption; Pop <given: 1 or 0>; Pop <value>
  Function LabGatewayUrlOption
    Push $0
    Push $1
    Push $2
    Push $3
    ${GetParameters} $0
    StrCpy $3 0
    StrCpy $1 ""
    Push $0
    Push "/GATEWAY_URL="
    Call LabGatewayFind
    Pop $2
    ${If} $2 >= 0
      StrCpy $3 1
      IntOp $2 $2 + 13
      StrCpy $0 $0 "" $2
      StrCpy $2 $0 1
      ${If} $2 == '"'
        StrCpy $0 $0 "" 1
        StrCpy $2 '"'
      ${Else}
        StrCpy $2 " "
      ${EndIf}
      Push $0
      Push $2
      Call LabGatewayFind
      Pop $2
      ${If} $2 >= 0
        StrCpy $1 $0 $2
      ${Else}
        StrCpy $1 $0
      ${EndIf}
    ${EndIf}
    StrCpy $0 $1
    StrCpy $1 $3
    Pop $3
    Pop $2
    Exch $1 ; given, $1 back
    Exch
    Exch $0 ; value, $0 back
    Exch
  FunctionEnd

  ; The address as the tray will take it: blanks trimmed, http:// added when no scheme is given;
  ; and why it is refused ("" when it is not).
  ;   Push <address>; Call LabGatewayCheckUrl; Pop <why refused>; Pop <address>
  Function LabGatewayCheckUrl
    Exch $0 ; address
    Push $1 ; why refused
    Push $2
    Push $3
    Push $4
    StrCpy $1 ""
    ; trim blanks
    ${Do}
      StrCpy $2 $0 1
      ${If} $2 == " "
      ${OrIf} $2 == "$\t"
        StrCpy $0 $0 "" 1
      ${Else}
        ${ExitDo}
      ${EndIf}
    ${Loop}
    ${Do}
      StrCpy $2 $0 "" -1
      ${If} $2 == " "
      ${OrIf} $2 == "$\t"
        StrCpy $0 $0 -1
      ${Else}
        ${ExitDo}
      ${EndIf}
    ${Loop}
    ${If} $0 == ""
      StrCpy $1 "Please enter the gateway address, for example http://10.0.0.5:8484."
    ${Else}
      Push $0
      Push "://"
      Call LabGatewayFind
      Pop $2
      ${If} $2 < 0
        StrCpy $0 "http://$0"
      ${EndIf}
      StrCpy $2 $0 7
      StrCpy $3 $0 8
      ${If} $2 == "http://"
        StrCpy $4 $0 "" 7
      ${ElseIf} $3 == "https://"
        StrCpy $4 $0 "" 8
      ${Else}
        StrCpy $1 "The gateway address must start with http:// or https:// (for example http://10.0.0.5:8484): $0"
      ${EndIf}
      ${If} $1 == ""
        StrCpy $2 $4 1
        ${If} $2 == ""
        ${OrIf} $2 == "/"
        ${OrIf} $2 == ":"
          StrCpy $1 "The gateway address names no host (for example http://10.0.0.5:8484): $0"
        ${EndIf}
      ${EndIf}
      ${If} $1 == ""
        ; characters the tray refuses, or that would break the JSON file
        StrLen $3 $0
        StrCpy $4 0
        ${DoWhile} $4 < $3
          StrCpy $2 $0 1 $4
          ${If} $2 == '"'
          ${OrIf} $2 == "\"
          ${OrIf} $2 == " "
          ${OrIf} $2 == "$\t"
            StrCpy $1 "The gateway address cannot contain spaces, quotes or backslashes: $0"
            ${ExitDo}
          ${ElseIf} $2 == "@"
            StrCpy $1 "The gateway address cannot contain a user name or password (@): the tray does not use them."
            ${ExitDo}
          ${EndIf}
          IntOp $4 $4 + 1
        ${Loop}
      ${EndIf}
    ${EndIf}
    Pop $4
    Pop $3
    Pop $2
    Exch $1 ; why refused
    Exch
    Exch $0 ; address
    Exch
  FunctionEnd

  ; Copy a tray-config.json with its gatewayUrl replaced (every other line as it was). A file
  ; without a gatewayUrl the tray can read is written anew with the address only.
  ;   Push <from>; Push <to>; Push <address>; Call LabGatewayWriteUrl
  Function LabGatewayWriteUrl
    Exch $2 ; address
    Exch
    Exch $1 ; to
    Exch 2
    Exch $0 ; from
    Push $3 ; from handle
    Push $4 ; to handle
    Push $5 ; line
    Push $6 ; start
    Push $7 ; length / rest
    Push $8 ; replaced
    StrCpy $8 0
    ClearErrors
    FileOpen $3 $0 r
    ${IfNot} ${Errors}
      FileOpen $4 $1 w
      ${Do}
        ClearErrors
        FileRead $3 $5
        ${If} ${Errors}
          ${ExitDo}
        ${EndIf}
        ${If} $8 == 0
          Push $5
          Call LabGatewayUrlSpan
          Pop $6
          Pop $7
          ${If} $6 >= 0
            IntOp $7 $6 + $7
            StrCpy $7 $5 "" $7
            StrCpy $5 $5 $6
            StrCpy $5 "$5$2$7"
            StrCpy $8 1
          ${EndIf}
        ${EndIf}
        FileWrite $4 $5
      ${Loop}
      FileClose $3
      FileClose $4
    ${EndIf}
    ${If} $8 == 0
      FileOpen $4 $1 w
      FileWrite $4 '{ "gatewayUrl": "$2" }$\r$\n'
      FileClose $4
    ${EndIf}
    Pop $8
    Pop $7
    Pop $6
    Pop $5
    Pop $4
    Pop $3
    Pop $0
    Pop $2
    Pop $1
  FunctionEnd

  !macro customInit
    StrCpy $LabGatewayUrl "${LAB_GATEWAY_DEFAULT_URL}"
    StrCpy $LabGatewayKeptFile ""
    StrCpy $LabGatewayKeptUrl ""
    ; An upgrade: $INSTDIR is the installed copy's folder (electron-builder's initMultiUser, run
    ; before this). Its settings are copied aside now: the install removes them before customInstall.
    ${If} ${FileExists} "$INSTDIR\resources\tray-config.json"
      InitPluginsDir
      ClearErrors
      CopyFiles /SILENT "$INSTDIR\resources\tray-config.json" "$PLUGINSDIR\tray-config.installed.json"
      ${IfNot} ${Errors}
        StrCpy $LabGatewayKeptFile "$PLUGINSDIR\tray-config.installed.json"
        Push $LabGatewayKeptFile
        Call LabGatewayUrlOf
        Pop $R0
        ${If} $R0 != ""
          StrCpy $LabGatewayUrl $R0
        ${EndIf}
        StrCpy $LabGatewayKeptUrl $LabGatewayUrl
      ${EndIf}
    ${EndIf}
    Call LabGatewayUrlOption
    Pop $R0
    Pop $R1
    ${If} $R0 == 1
      Push $R1
      Call LabGatewayCheckUrl
      Pop $R2
      Pop $R1
      ${If} $R2 != ""
      ${AndIf} ${Silent}
        ; Unattended, nobody can correct it: install nothing rather than a tray watching nowhere.
        SetErrorLevel 2
        Quit
      ${EndIf}
      ; (with the page shown, it is shown there and checked again when the technician goes on)
      StrCpy $LabGatewayUrl $R1
    ${EndIf}
  !macroend

  !macro customPageAfterChangeDir
    Page custom LabGatewayUrlPageShow LabGatewayUrlPageLeave

    Function LabGatewayUrlPageShow
      !insertmacro MUI_HEADER_TEXT "Gateway address" "Where the lab gateway runs on your network"
      nsDialogs::Create 1018
      Pop $0
      ${NSD_CreateLabel} 0 0 100% 24u "Address of the lab gateway's status page, as given by your IT department (for example http://10.0.0.5:8484):"
      Pop $0
      ${NSD_CreateText} 0 30u 100% 12u "$LabGatewayUrl"
      Pop $LabGatewayUrlField
      nsDialogs::Show
    FunctionEnd

    Function LabGatewayUrlPageLeave
      ${NSD_GetText} $LabGatewayUrlField $0
      Push $0
      Call LabGatewayCheckUrl
      Pop $1
      Pop $0
      ${If} $1 != ""
        MessageBox MB_OK|MB_ICONEXCLAMATION "$1"
        Abort
      ${EndIf}
      StrCpy $LabGatewayUrl $0
    FunctionEnd
  !macroend

  !macro customInstall
    ${If} $LabGatewayKeptFile == ""
      ; a first install
      FileOpen $0 "$INSTDIR\resources\tray-config.json" w
      FileWrite $0 '{ "gatewayUrl": "$LabGatewayUrl" }$\r$\n'
      FileClose $0
    ${ElseIf} $LabGatewayUrl S== $LabGatewayKeptUrl
      ; an upgrade keeping the address: the installed file as it was
      CopyFiles /SILENT $LabGatewayKeptFile "$INSTDIR\resources\tray-config.json"
    ${Else}
      ; an upgrade to another address: that address, the other settings as they were
      Push $LabGatewayKeptFile
      Push "$INSTDIR\resources\tray-config.json"
      Push $LabGatewayUrl
      Call LabGatewayWriteUrl
    ${EndIf}
    WriteRegStr HKLM "Software\Microsoft\Windows\CurrentVersion\Run" "LabGatewayTray" '"$INSTDIR\${APP_EXECUTABLE_FILENAME}"'
  !macroend
!endif

!macro customUnInstall
  DeleteRegValue HKLM "Software\Microsoft\Windows\CurrentVersion\Run" "LabGatewayTray"
!macroend
