; NSIS additions for the Lab Gateway Tray installer (electron-builder `nsis.include`).
; - Asks for the gateway's address on a page after the install directory, or takes it from the
;   command line for unattended installs:   "Lab Gateway Tray Setup.exe" /S /GATEWAY_URL=http://10.0.0.5:8484
; - Writes it to <install dir>\resources\tray-config.json, which the tray reads at start
;   (desktop/src/tray-config.ts: command line > environment > user file > this file > default).
; - Starts the tray at every login (HKLM Run key), removed by the uninstaller.
!include "nsDialogs.nsh"
!include "LogicLib.nsh"
!include "FileFunc.nsh"

!ifndef BUILD_UNINSTALLER
  Var LabGatewayUrl
  Var LabGatewayUrlField

  !macro customInit
    StrCpy $LabGatewayUrl "http://127.0.0.1:8484"
    ${GetParameters} $R0
    ClearErrors
    ${GetOptions} $R0 "/GATEWAY_URL=" $R1
    ${IfNot} ${Errors}
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
      ${NSD_GetText} $LabGatewayUrlField $LabGatewayUrl
      ${If} $LabGatewayUrl == ""
        MessageBox MB_OK|MB_ICONEXCLAMATION "Please enter the gateway address."
        Abort
      ${EndIf}
    FunctionEnd
  !macroend

  !macro customInstall
    FileOpen $0 "$INSTDIR\resources\tray-config.json" w
    FileWrite $0 '{ "gatewayUrl": "$LabGatewayUrl" }$\r$\n'
    FileClose $0
    WriteRegStr HKLM "Software\Microsoft\Windows\CurrentVersion\Run" "LabGatewayTray" '"$INSTDIR\${APP_EXECUTABLE_FILENAME}"'
  !macroend
!endif

!macro customUnInstall
  DeleteRegValue HKLM "Software\Microsoft\Windows\CurrentVersion\Run" "LabGatewayTray"
!macroend
